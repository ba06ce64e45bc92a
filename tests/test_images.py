"""Every odd file decodes to RGB or is refused with a sentence; nothing else escapes."""
from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.images import ImageError, load_image
from odd_images import corpus

CASES = corpus()


def test_corpus_is_broad():
    assert len(CASES) >= 15
    assert sum(v[1] == "ok" for v in CASES.values()) >= 8 and sum(v[1] != "ok" for v in CASES.values()) >= 7


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_odd_file(name):
    raw, expect = CASES[name]
    if expect == "ok":
        img = load_image(raw, name)
        assert img.image.mode == "RGB" and min(img.image.size) >= 8
    else:
        with pytest.raises(ImageError) as e:
            load_image(raw, name)
        assert re.search(expect, str(e.value)), str(e.value)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_specific_conversions():
    rot = load_image(CASES["rotated.jpg"][0], "r")
    assert rot.image.size == (150, 200) and any("EXIF" in n for n in rot.notes)
    gif = load_image(CASES["animated.gif"][0], "g")
    assert any("first frame" in n for n in gif.notes)
    assert np.array(gif.image)[0, 0].tolist() == [255, 0, 0]
    alpha = load_image(CASES["alpha.png"][0], "a")
    assert any("white" in n for n in alpha.notes)
    # the fully transparent corner (alpha 0) becomes white
    assert np.array(alpha.image)[0, 0].tolist() == [255, 255, 255]
    assert any("16-bit" in n for n in load_image(CASES["sixteen_bit.png"][0], "s").notes)
    assert any("CMYK" in n for n in load_image(CASES["cmyk.jpg"][0], "c").notes)


def _avif() -> bytes:
    import io

    from PIL import Image, features
    if not features.check("avif"):
        # the first bytes of an AVIF file (an ISO-BMFF 'ftyp' box), which is all the refusal reads
        return b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miafMA1B" + bytes(200)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, "AVIF")
    return buf.getvalue()


@pytest.mark.parametrize("name, raw, what", [
    ("photo.avif", _avif(), "an AVIF image"),
    ("IMG_0001.HEIC", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(100), "a HEIC/HEIF image"),
    ("handout.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(100), "a PDF document"),
    ("logo.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "an SVG drawing"),
])
def test_other_formats_are_named_with_the_accepted_types(name, raw, what):
    """Issue 13, point 3: the uploader takes any file, and a type the app does not read is refused
    in one sentence that names the file, what it is, and the types the app reads (never decoded)."""
    with pytest.raises(ImageError) as e:
        load_image(raw, name)
    msg = str(e.value)
    assert msg.startswith(f"{name} is {what}") and ", which this app cannot read; it reads" in msg
    assert "JPEG, PNG, WebP, BMP, TIFF or GIF" in msg and "\n" not in msg


@pytest.mark.parametrize("size, verdict", [
    (19_900_000, "ok"), (20_000_000, "ok"),
    (20_000_001, "f.jpg is 20,000,001 bytes; the limit is 20 MB (20,000,000 bytes)."),
    (20_500_000, "f.jpg is 20.5 MB; the limit is 20 MB."),
    (20_991_520, "f.jpg is 21.0 MB; the limit is 20 MB."),          # the teacher's photo: "21.0MB" on its chip
])
def test_the_size_limit_is_in_the_uploaders_decimal_mb(size, verdict):
    """Issue 13, point 1: the uploader lists sizes in decimal MB; the limit is 20,000,000 bytes and
    a refusal gives the size the file's chip shows (in bytes where that would read "20.0 MB")."""
    from pathlib import Path

    from explorer.images import MAX_BYTES
    assert MAX_BYTES == 20_000_000
    jpeg = (Path(__file__).resolve().parent.parent / "samples" / "church-1.jpg").read_bytes()
    raw = jpeg + bytes(size - len(jpeg))       # trailing bytes after the JPEG's end are ignored
    if verdict == "ok":
        assert load_image(raw, "f.jpg").image.size == (160, 160)
    else:
        with pytest.raises(ImageError) as e:
            load_image(raw, "f.jpg")
        assert str(e.value) == verdict

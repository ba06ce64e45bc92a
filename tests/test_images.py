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

"""A corpus of bad and odd image files, generated in memory (nothing committed).

Each entry: name -> (bytes, expectation), where expectation is "ok" (must decode to an
RGB image) or a regex the refusal message must match.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(w=200, h=150) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def corpus() -> dict[str, tuple[bytes, str]]:
    photo = _photo()
    jpeg = _save(photo, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    pal_t = photo.convert("P", palette=Image.ADAPTIVE, colors=16)
    pal_t.info["transparency"] = 0
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    i16 = Image.fromarray((np.arange(120 * 90).reshape(90, 120) * 6).astype(np.uint16))
    f32 = Image.fromarray(np.linspace(0, 1, 80 * 60, dtype=np.float32).reshape(60, 80), "F")
    return {
        "notes.jpg": (b"these are not pixels, just text\n" * 10, "not an image"),
        "empty.png": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or damaged"),
        "page.png": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
        "bomb.png": (_save(Image.new("1", (10_000, 10_000)), "PNG"), "too many pixels"),
        "sliver.png": (_save(Image.new("RGB", (4000, 40)), "PNG"), "more than 20:1"),
        "speck.png": (_save(Image.new("RGB", (3, 3)), "PNG"), "at least 8 pixels"),
        "cmyk.jpg": (_save(photo.convert("CMYK"), "JPEG"), "ok"),
        "sixteen_bit.png": (_save(i16, "PNG"), "ok"),
        "float.tiff": (_save(f32, "TIFF"), "ok"),
        "palette.png": (_save(photo.convert("P", palette=Image.ADAPTIVE), "PNG"), "ok"),
        "palette_transparent.png": (_save(pal_t, "PNG"), "ok"),
        "alpha.png": (_save(rgba, "PNG"), "ok"),
        "grey_alpha.png": (_save(rgba.convert("LA"), "PNG"), "ok"),
        "rotated.jpg": (_save(photo, "JPEG", exif=exif.tobytes()), "ok"),
        "animated.gif": (gif.getvalue(), "ok"),
        "photo.tiff": (_save(photo, "TIFF"), "ok"),
        "photo.bmp": (_save(photo, "BMP"), "ok"),
        "photo.webp": (_save(photo, "WEBP"), "ok"),
        "grey.jpg": (_save(photo.convert("L"), "JPEG"), "ok"),
    }

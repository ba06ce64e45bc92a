"""Turning whatever a user uploads into a clean RGB image, or one clear sentence why not.

Handled: JPEG, PNG, WebP, BMP, TIFF, GIF (first frame of an animation), EXIF rotation,
CMYK, 16-bit and float greys, palette images, alpha (composited on white). Refused with
a message: empty files, files of other types (named: AVIF, HEIC, SVG, PDF...), non-images,
truncated files, decompression bombs, absurd sizes. The uploader takes any file, so this
is where a wrong type is refused, in a sentence. Nothing here raises anything but
`ImageError` for bad input.

Sizes are in decimal megabytes (1 MB = 1,000,000 bytes), the unit Streamlit's uploader
lists files in, so the size a message gives is the one on the file's chip.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.text import plain

MAX_PIXELS = 40_000_000        # Pillow refuses anything larger before decoding it
MAX_MB = 20
MAX_BYTES = MAX_MB * 1_000_000  # decimal MB, as the uploader shows sizes; the browser's own cap is
                                # .streamlit/config.toml's maxUploadSize (200 MB), so the page can say why
MIN_SIDE = 8
MAX_ASPECT = 20
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO")
ACCEPTED = "JPEG, PNG, WebP, BMP, TIFF or GIF"
LIMIT = f"up to {MAX_MB} MB each"
# Formats people upload that this app does not read, told apart by their first bytes (never
# decoded): (test on the first 64 bytes, name for the message).
OTHER_FORMATS = [
    (lambda h: h[4:8] == b"ftyp" and b"avi" in h[8:40], "an AVIF image"),
    (lambda h: h[4:8] == b"ftyp" and any(b in h[8:40] for b in (b"heic", b"heix", b"hevc", b"heim", b"mif1")),
     "a HEIC/HEIF image (the iPhone's format)"),
    (lambda h: h.startswith(b"\xff\x0a") or h.startswith(b"\0\0\0\x0cJXL "), "a JPEG XL image"),
    (lambda h: h.startswith(b"%PDF"), "a PDF document"),
    (lambda h: b"<svg" in h.lower() or (h.lstrip().startswith(b"<?xml") and b"svg" in h.lower()), "an SVG drawing"),
    (lambda h: h.startswith(b"8BPS"), "a Photoshop file"),
    (lambda h: h.startswith(b"\0\0\1\0"), "an icon file"),
    (lambda h: h[4:8] == b"ftyp", "a video or other media file"),
    (lambda h: h.startswith(b"PK\x03\x04"), "a zip archive (or an Office document)"),
]


def size_text(n: int) -> str:
    """A file size as the uploader writes it on a file's chip (decimal MB, one decimal); in
    bytes where that would round to the limit itself ('20.0 MB' over a 20 MB limit)."""
    mb = n / 1000 / 1000   # the uploader divides by 1000 twice: the same rounding as its chip
    if mb > MAX_MB and round(mb, 1) <= MAX_MB:
        return f"{n:,} bytes"
    return f"{mb:.1f} MB"


def kind_of(head: bytes) -> str | None:
    """What a file that is not a readable image is, from its first bytes, or None."""
    for test, what in OTHER_FORMATS:
        if test(head[:64]):
            return what
    return None


class ImageError(ValueError):
    """Bad input; str(e) is a sentence for the user."""


@dataclass
class LoadedImage:
    name: str
    image: Image.Image                  # RGB, EXIF-rotated
    notes: list[str] = field(default_factory=list)  # what was done to it, for the user
    digest: str = ""                    # sha1 of the uploaded bytes: a cache key for results

    @property
    def label(self) -> str:
        """The name, escaped for any element that renders Markdown (explorer.text.plain)."""
        return plain(self.name)


def load_image(raw: bytes, name: str = "image") -> LoadedImage:
    if not raw:
        raise ImageError(f"{name} is empty (0 bytes).")
    if len(raw) > MAX_BYTES:
        size = size_text(len(raw))
        limit = f"{MAX_MB} MB ({MAX_BYTES:,} bytes)" if size.endswith("bytes") else f"{MAX_MB} MB"
        raise ImageError(f"{name} is {size}; the limit is {limit}.")
    notes: list[str] = []
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    Image.init()  # registers every plugin, so the format whitelist below can name them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw), formats=[f for f in FORMATS if f in Image.OPEN])
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise Image.DecompressionBombError("too many pixels")
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"{name} is {w}x{h} pixels; images need at least {MIN_SIDE} pixels a side.")
            if max(w, h) / min(w, h) > MAX_ASPECT:
                raise ImageError(f"{name} is {w}x{h} pixels, more than {MAX_ASPECT}:1; crop it to the object first.")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
                notes.append(f"animated ({frames} frames): using the first frame")
            im.load()
            if _orientation(im) not in (None, 1):
                notes.append("rotated upright from its EXIF orientation")
            im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} declares too many pixels (over {MAX_PIXELS // 1_000_000} megapixels); "
                         "it was refused before decoding.") from None
    except UnidentifiedImageError:
        what = kind_of(raw)
        if what:
            raise ImageError(f"{name} is {what}, which this app cannot read; it reads {ACCEPTED} "
                             "(save the picture as one of those first).") from None
        raise ImageError(f"{name} is not an image this app can read; it reads {ACCEPTED}.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name} could not be decoded; it may be truncated or damaged ({_short(e)}).") from None
    except Exception as e:  # noqa: BLE001 -- a decoder bug must still not reach the page as a traceback
        raise ImageError(f"{name} could not be read as an image ({type(e).__name__}).") from None
    try:
        return LoadedImage(name, _to_rgb(im, notes), notes, hashlib.sha1(raw).hexdigest())
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"{name} has a pixel format this app cannot convert ({im.mode}, "
                         f"{type(e).__name__}).") from None


def _orientation(im: Image.Image):
    try:
        return im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 -- a broken EXIF block just means no rotation
        return None


def _short(e: Exception) -> str:
    s = str(e).strip() or type(e).__name__
    return s if len(s) < 80 else s[:77] + "..."


def _to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        notes.append(f"{'16-bit' if mode.startswith('I;16') else mode + '-mode'} image scaled to 8 bits")
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas composited on white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("converted from CMYK")
    elif mode not in ("RGB", "L"):
        notes.append(f"converted from {mode}")
    return im.convert("RGB")


# --- pictures as the pages draw them ------------------------------------------------------

def natural_width(img) -> int:
    """Pixel width of a PIL image, an (H, W[, C]) array, or an image file."""
    if isinstance(img, Image.Image):
        return img.width
    if isinstance(img, np.ndarray):
        return int(img.shape[1])
    with Image.open(img) as im:
        return im.width


def magnify(img: np.ndarray, px: int) -> np.ndarray:
    """An (H, W[, C]) picture with every pixel repeated into a k x k square, k the largest whole
    number that keeps it at most `px` wide (at least 1): small tensors and kernels stay sharp
    where the browser would blur them."""
    k = max(1, px // img.shape[1])
    return img.repeat(k, 0).repeat(k, 1)


def png_bytes(img: np.ndarray) -> bytes:
    """An (H, W, 3) or (H, W) uint8 array, or floats in [0, 1], as PNG bytes, pixel for pixel."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()

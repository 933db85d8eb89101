"""Reading photos: one place that applies EXIF orientation and turns unreadable files into UserErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chessrec.errors import UserError


#: largest JPEG decoding reduction (libjpeg scales by 1/2, 1/4 or 1/8 while decoding)
MAX_REDUCTION = 8


def read_rgb(path: Path | str) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of an image file, upright as its EXIF orientation says."""
    return read_rgb_reduced(path)[0]


def read_rgb_reduced(path: Path | str, min_long_side: int | None = None) -> tuple[np.ndarray, int]:
    """An image file's pixels, a JPEG decoded at 1/2, 1/4 or 1/8 scale while its long side stays at
    least ``min_long_side``; returns (pixels, factor): pixel (x, y) is (factor * x, factor * y) in
    the full-size photo.

    libjpeg reduces while decoding (it skips the high frequencies), so a 3240 x 5760 phone photo
    read at 1/4 costs a fraction of a full decode, and nothing a square crop of 40-80 px needs is
    lost: its squares still span 60 px and more.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            factor = 1
            if min_long_side is not None and im.format == "JPEG":
                while factor < MAX_REDUCTION and max(im.size) // (2 * factor) >= min_long_side:
                    factor *= 2
                if factor > 1:
                    im.draft("RGB", (im.size[0] // factor, im.size[1] // factor))
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")), factor
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file") from None
    except Image.DecompressionBombError as exc:
        size = str(exc).split(" exceeds")[0].removeprefix("Image size ")
        raise UserError(f"{path}: refused: the image is {size}, more than a photo needs (a decompression "
                        f"bomb limit of {Image.MAX_IMAGE_PIXELS * 2} pixels)") from None
    except OSError as exc:  # truncated or corrupt data
        raise UserError(f"{path}: unreadable image ({exc})") from None


def check_rgb(image, name: str = "image") -> np.ndarray:
    """``image`` as an H x W x 3 uint8 RGB array, or a UserError naming it and what it is instead."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"{name}: expected an H x W x 3 uint8 RGB image, got {image.shape} {image.dtype}")
    return image

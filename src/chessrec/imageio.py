"""Reading photos: one place that applies EXIF orientation and turns unreadable files into UserErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chessrec.errors import UserError


def read_rgb(path: Path | str) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of an image file, upright as its EXIF orientation says."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file") from None
    except OSError as exc:  # truncated or corrupt data
        raise UserError(f"{path}: unreadable image ({exc})") from None


def check_rgb(image, name: str = "image") -> np.ndarray:
    """``image`` as an H x W x 3 uint8 RGB array, or a UserError naming it and what it is instead."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"{name}: expected an H x W x 3 uint8 RGB image, got {image.shape} {image.dtype}")
    return image

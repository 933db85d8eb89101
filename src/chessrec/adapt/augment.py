"""Many perturbed copies of a few photos' square crops: the few real crops are all there is.

Each copy re-cuts the crops from the photo with every board corner moved at random (about a
tenth of a square: what corner detection gets wrong, and a slightly different perspective) from
the photo shrunk by a random factor (a camera further away or with fewer pixels).  Photometric
jitter (brightness, contrast, colour, noise, mirror) is added per batch during training, as in
:func:`chessrec.jitter.jitter_crops`.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from chessrec.geometry import MIN_BOARD_SIDE_PX, CropSpec, board_sides, square_crops


def jittered_corners(corners: np.ndarray, rng: np.random.Generator, jitter: float,
                     image_shape: tuple[int, ...]) -> np.ndarray:
    """Corners each moved by a normal offset of ``jitter`` square sides (standard deviation), kept
    inside the image (a board that fills the photo must not be pushed off it)."""
    square = float(board_sides(corners).mean()) / 8.0
    moved = corners + rng.normal(0.0, jitter * square, size=corners.shape)
    height, width = image_shape[:2]
    return np.clip(moved, -0.5, [width - 0.5, height - 0.5])


def augmented_crops(pixels: np.ndarray, corners: np.ndarray, specs: Mapping[str, CropSpec], copies: int,
                    rng: np.random.Generator, jitter: float = 0.1, min_scale: float = 0.5) -> dict[str, np.ndarray]:
    """{spec name: (copies, 64, 3, H, W) uint8}: copy 0 is the photo as given, the others perturbed.

    The photo is never shrunk below where its board would be too small to cut (a small render)."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    smallest = min(1.0, max(min_scale, 1.25 * MIN_BOARD_SIDE_PX / float(board_sides(corners).min())))
    for copy in range(copies):
        image, board = pixels, np.asarray(corners, dtype=np.float64)
        if copy:
            scale = float(rng.uniform(smallest, 1.0))
            if scale < 0.98:
                image = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                board = (board + 0.5) * scale - 0.5
            board = jittered_corners(board, rng, jitter, image.shape)
        for name, spec in specs.items():
            out[name].append(square_crops(image, board, spec))
    return {name: np.stack(crops) for name, crops in out.items()}

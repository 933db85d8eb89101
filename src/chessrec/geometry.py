"""Board geometry, stated once and shared by featurize, training, evaluation and inference."""

from __future__ import annotations

import numpy as np

from chessrec.errors import UserError

#: where the a1 corner lies in the image -> how many quarter turns to rotate image-ordered corners
A1_POSITIONS = ("bottom-left", "bottom-right", "top-right", "top-left")


def order_corners(points, a1: str = "bottom-left") -> np.ndarray:
    """Board corners in :data:`chessrec.labels.CORNER_NAMES` order from four points in any order.

    The points are first sorted geometrically into the image's top-left, top-right,
    bottom-right, bottom-left (clockwise on screen, starting from the point nearest the
    image's top-left); then rotated so that the corner named by ``a1`` becomes the a1 corner.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (4, 2) or not np.all(np.isfinite(pts)):
        raise UserError(f"corners must be four finite (x, y) points, got shape {pts.shape}")
    if a1 not in A1_POSITIONS:
        raise UserError(f"a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
    centre = pts.mean(axis=0)
    # clockwise on screen (y grows downward) == increasing atan2 angle
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    ring = pts[np.argsort(angles)]
    start = int(np.argmin(ring.sum(axis=1)))  # nearest the image's top-left
    image_order = np.roll(ring, -start, axis=0)  # TL, TR, BR, BL of the image
    # image_order[3] is the image's bottom-left; a1 must land at index 3 (bottom_left)
    a1_index_in_image = {"top-left": 0, "top-right": 1, "bottom-right": 2, "bottom-left": 3}[a1]
    return np.roll(image_order, 3 - a1_index_in_image, axis=0)

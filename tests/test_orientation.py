"""Orientation: the rotation whose decoded position is most plausible wins."""

from __future__ import annotations

import numpy as np
import pytest

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, CropSpec, order_corners, square_crops
from chessrec.orientation import decide_orientation
from test_geometry import board_corners, look_at_camera, photo_of_coloured_board, square_colour

EXPECTED = np.stack([square_colour(sq) for sq in range(64)]).astype(float)


def colour_score_fn(image):
    """A stand-in classifier: how well each crop's colour matches its square's known colour."""

    def score(corners: np.ndarray) -> float:
        crops = square_crops(image, corners, CropSpec(kind="plain", size=8, mirror=False))
        return -float(np.abs(crops[:, :, 4, 4].astype(float) - EXPECTED).mean())

    return score


@pytest.mark.parametrize("azimuth", [0, 60, 100, 170, 200, 260, 330])
def test_orientation_finds_a1_for_cameras_on_every_side(azimuth):
    camera = look_at_camera(55, azimuth)
    image = photo_of_coloured_board(camera)
    truth = board_corners(camera)
    image_order = order_corners(truth)  # what a localiser returns: no idea where a1 is
    result = decide_orientation(image, image_order, colour_score_fn(image))
    np.testing.assert_allclose(result.corners, truth, atol=1e-6)
    assert result.margin > 0 and set(result.scores) == set(A1_POSITIONS)


def test_orientation_prior_breaks_ties_and_first_position_wins_a_dead_heat():
    square = np.array([[100, 100], [400, 100], [400, 400], [100, 400]], float)
    assert decide_orientation(None, square, lambda c: 0.0).a1 == "bottom-left"
    assert decide_orientation(None, square, lambda c: 0.0, log_prior={"top-right": 0.1}).a1 == "top-right"


def test_orientation_refuses_when_no_rotation_is_plausible():
    square = np.array([[100, 100], [400, 100], [400, 400], [100, 400]], float)
    with pytest.raises(UserError, match="orientation"):
        decide_orientation(None, square, lambda c: float("-inf"))
    with pytest.raises(UserError, match="unknown a1"):
        decide_orientation(None, square, lambda c: 0.0, log_prior={"left": 1.0})

"""Orientation: the rotation whose decoded position is most plausible wins."""

from __future__ import annotations

import chess
import numpy as np
import pytest

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, CropSpec, order_corners, square_crops
from chessrec.labels import labels_from_fen
from chessrec.orientation import checker_log_odds, checker_log_prior, decide_orientation, home_side_score
from chessrec.synth.positions import game_positions
from chessrec.synth.render import render_board
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
    result = decide_orientation(image_order, colour_score_fn(image))
    np.testing.assert_allclose(result.corners, truth, atol=1e-6)
    assert result.margin > 0 and set(result.scores) == set(A1_POSITIONS)


def test_orientation_prior_breaks_ties_and_first_position_wins_a_dead_heat():
    square = np.array([[100, 100], [400, 100], [400, 400], [100, 400]], float)
    assert decide_orientation(square, lambda c: 0.0).a1 == "bottom-left"
    assert decide_orientation(square, lambda c: 0.0, log_prior={"top-right": 0.1}).a1 == "top-right"


def test_orientation_refuses_when_no_rotation_is_plausible():
    square = np.array([[100, 100], [400, 100], [400, 400], [100, 400]], float)
    with pytest.raises(UserError, match="orientation"):
        decide_orientation(square, lambda c: float("-inf"))
    with pytest.raises(UserError, match="unknown a1"):
        decide_orientation(square, lambda c: 0.0, log_prior={"left": 1.0})


# ---------------------------------------------------------------- the chess cues: checker pattern, home sides
HALF_TURN = {"bottom-left": "top-right", "top-right": "bottom-left",
             "bottom-right": "top-left", "top-left": "bottom-right"}


def true_a1(corners: np.ndarray) -> str:
    """The a1 position under which ``order_corners`` gives back the annotated corner order."""
    return next(a1 for a1 in A1_POSITIONS if np.allclose(order_corners(corners, a1), corners))


def test_checker_log_odds_reads_the_phase_of_a_clean_pattern_and_its_inverse():
    odd_dark = np.where(np.add.outer(np.arange(8), np.arange(8)) % 2 == 1, 60.0, 200.0)
    assert checker_log_odds(odd_dark) > 50
    assert checker_log_odds(260.0 - odd_dark) < -50
    assert checker_log_odds(np.full((8, 8), 128.0)) == 0.0


def test_checker_votes_of_occupied_squares_are_discounted():
    odd_dark = np.where(np.add.outer(np.arange(8), np.arange(8)) % 2 == 1, 60.0, 200.0)
    painted = odd_dark.copy()
    painted[:3] = 260.0 - painted[:3]  # pieces of the opposite shade on the first three rows
    empty = np.ones((8, 8))
    empty[:3] = 0.0
    assert checker_log_odds(painted, empty) == pytest.approx(checker_log_odds(odd_dark, empty))
    assert checker_log_odds(painted, empty) > 10


@pytest.mark.parametrize("seed", range(6))
def test_checker_prior_favours_the_true_diagonal_on_rendered_photos(seed):
    rng = np.random.default_rng(seed)
    rendered = render_board(game_positions(rng, 1)[0], rng_seed=900 + seed, image_size=384, with_ids=False)
    truth = true_a1(rendered.corners)
    prior = checker_log_prior(rendered.image, order_corners(rendered.corners))  # no classifier weights
    assert prior[truth] == prior[HALF_TURN[truth]] > 0
    assert prior[truth] > max(prior[a1] for a1 in A1_POSITIONS if a1 not in (truth, HALF_TURN[truth]))


def test_home_side_score_is_positive_for_the_start_position_and_flips_on_a_half_turn():
    start = np.eye(13)[labels_from_fen(chess.STARTING_BOARD_FEN)]
    assert home_side_score(start) == pytest.approx(2 * (8 + 8 * 5 / 7))  # 8 pieces on the back rank, 8 pawns a rank in
    assert home_side_score(start[::-1]) == pytest.approx(-home_side_score(start))  # a1 <-> h8 etc.
    assert home_side_score(np.eye(13)[np.full(64, 12)]) == 0.0  # an empty board has no sides

"""The renderer: exact geometry and labels, determinism, and a data set written whole or not at all."""

from __future__ import annotations

import json

import chess
import cv2
import numpy as np
import pytest

from chessrec.cli import main as cli_main
from chessrec.datasets import load_dataset
from chessrec.geometry import CropSpec, board_homography, height_aware_boxes, validate_corners
from chessrec.labels import EMPTY, board_from_labels, labels_from_board
from chessrec.synth import contact_sheet, render_board, render_dataset
from chessrec.synth import dataset as synth_dataset
from chessrec.synth.positions import game_positions, random_position

EMPTY_BOARD = np.full(64, EMPTY, dtype=np.int64)
START = labels_from_board(chess.Board())


def _square_means(image: np.ndarray, corners: np.ndarray, side: int = 256) -> np.ndarray:
    """Mean luminance of the centre of each square of the rectified board, rows rank 8..1."""
    rect = cv2.warpPerspective(image, board_homography(corners, side), (side, side))
    lum = cv2.cvtColor(rect, cv2.COLOR_RGB2GRAY).astype(np.float64)
    q = side // 8
    return lum.reshape(8, q, 8, q)[:, q // 4:3 * q // 4, :, q // 4:3 * q // 4].mean(axis=(1, 3))


@pytest.mark.parametrize("seed", range(6))
def test_rectifying_with_annotated_corners_gives_the_square_pattern(seed):
    render = render_board(EMPTY_BOARD, seed, image_size=256)
    means = _square_means(render.image, render.corners)
    rank = 7 - np.arange(8)[:, None]
    dark = (np.arange(8)[None, :] + rank) % 2 == 0  # a1 is a dark square
    for i in range(8):
        for j in range(8):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < 8 and j + dj < 8:
                    a, b = means[i, j], means[i + di, j + dj]
                    light, darker = (b, a) if dark[i, j] else (a, b)
                    assert light > darker, f"seed {seed}: square ({i},{j}) vs ({i + di},{j + dj})"


@pytest.mark.parametrize("seed", range(4))
def test_each_labelled_piece_is_drawn_on_its_labelled_square(seed):
    labels = random_position(np.random.default_rng(seed)) if seed % 2 else START
    render = render_board(labels, seed, image_size=384)
    occupied = set(np.flatnonzero(labels != EMPTY).tolist())
    # no piece pixels belong to an empty square
    assert set(np.unique(render.square_ids[render.piece_mask]).tolist()) <= occupied
    # the centre of an occupied square (found through the annotated corners) shows a piece:
    # its own, or a nearer one standing in front of it
    image_from_board = np.linalg.inv(board_homography(render.corners, 8))
    own = 0
    for square in occupied:
        p = image_from_board @ [square % 8 + 0.5, 7 - square // 8 + 0.5, 1.0]
        x, y = (p[:2] / p[2]).astype(int)
        assert render.piece_mask[y, x], f"seed {seed}: no piece at the centre of square {square}"
        own += render.square_ids[y, x] == square
    assert own >= 0.75 * len(occupied)


@pytest.mark.parametrize("square", [0, 7, 27, 56, 63])
def test_a_lone_piece_covers_the_centre_of_its_square(square):
    labels = EMPTY_BOARD.copy()
    labels[square] = 4  # white queen
    render = render_board(labels, 100 + square, image_size=256)
    image_from_board = np.linalg.inv(board_homography(render.corners, 8))
    p = image_from_board @ [square % 8 + 0.5, 7 - square // 8 + 0.5, 1.0]
    x, y = (p[:2] / p[2]).astype(int)
    assert render.piece_mask[y, x] and render.square_ids[y, x] == square
    assert set(np.unique(render.square_ids[render.piece_mask]).tolist()) == {square}


def test_same_seed_gives_same_pixels_and_the_camera_ignores_the_position():
    a = render_board(START, 5, image_size=192)
    b = render_board(START, 5, image_size=192)
    c = render_board(EMPTY_BOARD, 5, image_size=192)
    assert np.array_equal(a.image, b.image)
    assert np.allclose(a.corners, c.corners) and a.camera == c.camera
    assert not np.array_equal(a.image, render_board(START, 6, image_size=192).image)


def test_a_slimmer_set_changes_only_the_pieces_widths():
    from chessrec.synth.render import GIRTH_RANGE, ChessSet

    slim, stout = (render_board(START, 9, image_size=256, chess_set=ChessSet(girth=g)) for g in GIRTH_RANGE)
    assert slim.camera == {**stout.camera, "girth": GIRTH_RANGE[0]}  # same camera, light, sensor
    assert stout.camera["girth"] == GIRTH_RANGE[1]
    board = ~(slim.piece_mask | stout.piece_mask)  # the same pixels there, but for narrower shadows
    assert (slim.image[board] == stout.image[board]).all(axis=-1).mean() > 0.8
    assert slim.piece_mask.sum() < 0.75 * stout.piece_mask.sum()  # same heights, narrower pieces
    drawn = {render_board(START, seed, image_size=64, with_ids=False).camera["girth"] for seed in range(40)}
    assert min(drawn) >= GIRTH_RANGE[0] and max(drawn) <= GIRTH_RANGE[1] and max(drawn) - min(drawn) > 0.2
    with pytest.raises(ValueError, match="girth"):
        ChessSet(girth=2.0)


@pytest.mark.parametrize("seed", range(10))
def test_annotated_corners_are_a_valid_board_inside_the_image(seed):
    render = render_board(EMPTY_BOARD, seed, image_size=256, with_ids=False)
    validate_corners(render.corners, render.image.shape)
    assert 35.0 <= render.camera["elevation_deg"] <= 90.0


@pytest.mark.parametrize("seed", range(12))
def test_every_render_is_cut_along_its_true_vertical(seed):
    """The principal point sits at the image centre, as in an uncropped photo, so the height-aware
    crops find the vertical from the board's corners alone, as on real photos: every box stands on
    its square and points away from where the world's downward direction vanishes."""
    render = render_board(EMPTY_BOARD, seed, image_size=320, with_ids=False)
    assert render.camera["principal_point"] == [160.0, 160.0]
    projection = np.asarray(render.camera["projection"])
    nadir = projection[:, 2] * -1.0
    nadir = nadir[:2] / nadir[2]
    boxes = height_aware_boxes(render.corners, CropSpec(kind="height_aware", size=16), render.image.shape)
    bottom = (boxes[:, 3] + boxes[:, 2]) / 2
    up = (boxes[:, 0] + boxes[:, 1]) / 2 - bottom
    away = bottom - nadir
    far = np.linalg.norm(away, axis=1) > 20  # the direction is only defined away from the nadir
    cosine = np.einsum("ij,ij->i", up[far], away[far]) / np.linalg.norm(up[far], axis=1) / np.linalg.norm(away[far], axis=1)
    assert far.sum() >= 48 and cosine.min() > 0.99, (render.camera["elevation_deg"], cosine.min())


def test_game_positions_follow_one_move_at_a_time():
    positions = game_positions(np.random.default_rng(3), 12)
    assert len(positions) >= 2
    for before, after in zip(positions, positions[1:]):
        changed = int((before != after).sum())
        assert 2 <= changed <= 4  # a move, capture, castling (4) or en passant (3)


@pytest.mark.parametrize("seed", range(8))
def test_random_positions_are_legal(seed):
    board = board_from_labels(random_position(np.random.default_rng(seed)))
    assert len(board.pieces(chess.KING, chess.WHITE)) == 1 and len(board.pieces(chess.KING, chess.BLACK)) == 1
    assert not any(chess.square_rank(sq) in (0, 7) for sq in board.pieces(chess.PAWN, chess.WHITE)
                   | board.pieces(chess.PAWN, chess.BLACK))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_data_sets_whatever_the_worker_count(tmp_path):
    kwargs = dict(n_games=3, moves_per_game=2, n_random=2, image_size=128, seed=11)
    render_dataset(tmp_path / "one", workers=1, **kwargs)
    render_dataset(tmp_path / "two", workers=2, **kwargs)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one.keys() == two.keys() and one == two
    assert len([k for k in one if k.endswith(".jpg")]) == 8


def test_rendered_data_set_is_chessred_format_and_split_by_game(tmp_path):
    samples = render_dataset(tmp_path / "raw", n_games=4, moves_per_game=3, n_random=3, image_size=128, seed=2)
    doc = json.loads((tmp_path / "raw" / "annotations.json").read_text())
    assert len(doc["images"]) == len(samples) == len(doc["annotations"]["corners"])
    assert {"elevation_deg", "azimuth_deg", "distance", "focal_px", "roll_deg"} <= doc["images"][0]["camera"].keys()
    loaded = load_dataset("synthetic", tmp_path / "raw").samples
    assert [s.fen for s in loaded] == [s.fen for s in samples]
    split_of_game = {}
    for s in loaded:
        assert split_of_game.setdefault(s.game_id, s.split) == s.split
    assert set(split_of_game.values()) == {"train", "val", "test"}
    assert all(s.image_path.is_file() for s in samples)


def test_failed_render_leaves_nothing_half_written(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("renderer crashed")
        return render_board(*args, **kwargs)

    monkeypatch.setattr(synth_dataset, "render_board", failing)
    with pytest.raises(RuntimeError):
        render_dataset(tmp_path / "raw", n_games=2, moves_per_game=3, n_random=0, image_size=128, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_render_command_and_contact_sheet(tmp_path):
    sheet = tmp_path / "plots" / "samples.png"
    assert cli_main(["render", "--n", "5", "--moves-per-game", "2", "--size", "128", "--out",
                     str(tmp_path / "out"), "--contact-sheet", str(sheet)]) == 0
    samples = load_dataset("synthetic", tmp_path / "out").samples
    assert len(samples) >= 3
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] >= 256 and image.shape[1] >= 256
    contact_sheet(samples, tmp_path / "four.png", n=4, tile=64)
    assert cv2.imread(str(tmp_path / "four.png")).shape[:2] == (128, 128)

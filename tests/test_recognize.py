"""``chessrec.recognize`` and ``chessrec predict`` on photos whose content a stand-in classifier can read.

Each square of a board is painted in its class's colour and the board warped into a photo; the
stand-in classifier reads the colour back from the very crops ``recognize`` cuts.  So corners,
orientation, crops, decoding and output are all exercised for real, without a trained network.
"""

from __future__ import annotations

import json

import chess
import cv2
import numpy as np
import pytest
from PIL import Image

from chessrec import recognize as recognize_module
from chessrec.cli import main
from chessrec.geometry import CropSpec
from chessrec.inference.model import BoardPredictions
from chessrec.labels import CLASS_NAMES, fen_from_labels, labels_from_fen
from chessrec.recognize import parse_corners, recognize

FEN = "r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R"
#: one well-separated colour per class id (12 = empty)
PALETTE = np.array([
    [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
    [128, 0, 0], [0, 128, 0], [0, 0, 128], [128, 128, 0], [128, 0, 128], [0, 128, 128], [255, 255, 255],
], dtype=np.float64)
#: the photo's board corners, in a8, h8, h1, a1 order, when a1 is at the image's bottom-left
CORNERS_A1_BOTTOM_LEFT = np.array([[90.0, 60.0], [380.0, 75.0], [400.0, 330.0], [70.0, 320.0]])


class ColourClassifier(BoardPredictions):
    """Stand-in for a trained classifier: the class whose colour is nearest each crop's centre."""

    crop_specs = {"square": CropSpec(kind="plain", size=16, mirror=False)}
    class_names = CLASS_NAMES

    def predict_squares(self, crops, squares: np.ndarray) -> np.ndarray:
        centre = crops["square"][..., 5:11, 5:11].astype(np.float64).mean(axis=(-1, -2))  # (M, 3)
        distance = ((centre[..., None, :] - PALETTE) ** 2).sum(axis=-1)
        logits = -distance / 800.0
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32)


def photo(fen: str, corners: np.ndarray, size=(480, 400)) -> np.ndarray:
    """An RGB photo of the board: each square painted in its class colour, warped onto ``corners``."""
    labels = labels_from_fen(fen)
    side = 40
    board = np.zeros((8 * side, 8 * side, 3), np.uint8)
    for square, cls in enumerate(labels):
        row, col = 7 - square // 8, square % 8
        board[row * side:(row + 1) * side, col * side:(col + 1) * side] = PALETTE[cls]
    src = np.float32([[0, 0], [8 * side, 0], [8 * side, 8 * side], [0, 8 * side]])
    h = cv2.getPerspectiveTransform(src, np.float32(corners))
    out = cv2.warpPerspective(board, h, size, borderValue=(90, 90, 90))
    return out


@pytest.fixture
def stand_in_model(monkeypatch):
    model = ColourClassifier()
    monkeypatch.setattr(recognize_module, "load_model", lambda _=None: model)
    return model


def test_recognize_reads_board_from_corners_in_any_order(stand_in_model):
    image = photo(FEN, CORNERS_A1_BOTTOM_LEFT)
    shuffled = CORNERS_A1_BOTTOM_LEFT[[2, 0, 3, 1]]
    result = recognize(image, corners=shuffled, a1="bottom-left", model=stand_in_model)
    assert result.fen == FEN and result.valid
    np.testing.assert_allclose(result.corners, CORNERS_A1_BOTTOM_LEFT)
    assert result.confidence.shape == (64,) and (result.confidence > 0.5).all()


def test_recognize_honours_where_a1_lies_in_the_image(stand_in_model):
    # the camera stands on Black's side: a1 appears at the image's top-right
    corners = CORNERS_A1_BOTTOM_LEFT[[2, 3, 0, 1]]  # a8 corner where h1 was, and so on
    image = photo(FEN, corners)
    result = recognize(image, corners=CORNERS_A1_BOTTOM_LEFT, a1="top-right", model=stand_in_model)
    assert result.fen == FEN and result.a1 == "top-right"
    np.testing.assert_allclose(result.corners, corners)
    wrong = recognize(image, corners=CORNERS_A1_BOTTOM_LEFT, a1="bottom-left", model=stand_in_model)
    assert wrong.fen != FEN


def test_recognize_decides_orientation_when_a1_is_not_given(stand_in_model):
    pytest.importorskip("chessrec.orientation")
    corners = CORNERS_A1_BOTTOM_LEFT[[1, 2, 3, 0]]  # a1 at the image's top-left
    result = recognize(photo(FEN, corners), corners=CORNERS_A1_BOTTOM_LEFT, model=stand_in_model)
    # quarter turns put pawns on the back ranks; a half turn is only told apart by a model that sees
    # the square's rank (the stand-in does not), so either of the two may win here
    assert set(result.orientation_scores) == {"bottom-left", "bottom-right", "top-right", "top-left"}
    quarter_turns = max(result.orientation_scores["bottom-left"], result.orientation_scores["top-right"])
    assert result.orientation_scores[result.a1] > quarter_turns
    half_turn = fen_from_labels(labels_from_fen(FEN)[::-1])
    assert (result.a1, result.fen) in {("top-left", FEN), ("bottom-right", half_turn)}


def test_decoder_choice_changes_only_the_decoding(stand_in_model):
    image = photo("4k3/8/8/8/8/8/8/4K3", CORNERS_A1_BOTTOM_LEFT)
    for decoder in ("argmax", "greedy", "constrained", "topk_legal", "continuity"):
        result = recognize(image, corners=CORNERS_A1_BOTTOM_LEFT, a1="bottom-left", decoder=decoder, model=stand_in_model)
        assert result.fen == "4k3/8/8/8/8/8/8/4K3" and result.decoder == decoder


def test_photo_is_read_upright_from_its_exif_orientation(stand_in_model, tmp_path):
    upright = photo(FEN, CORNERS_A1_BOTTOM_LEFT)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down; viewers rotate it by 180 degrees
    Image.fromarray(upright[::-1, ::-1].copy()).save(path, quality=95, exif=exif)
    result = recognize(path, corners=CORNERS_A1_BOTTOM_LEFT, a1="bottom-left", model=stand_in_model)
    assert result.fen == FEN


def test_predict_prints_fen_and_json(stand_in_model, tmp_path, capsys):
    path = tmp_path / "board.png"
    Image.fromarray(photo(FEN, CORNERS_A1_BOTTOM_LEFT)).save(path)
    corners = ",".join(f"{v:g}" for v in CORNERS_A1_BOTTOM_LEFT[[3, 1, 0, 2]].ravel())
    assert main(["predict", str(path), "--corners", corners, "--a1", "bottom-left"]) == 0
    assert capsys.readouterr().out.strip() == FEN
    assert main(["predict", str(path), "--corners", corners, "--a1", "bottom-left", "--decoder", "argmax", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["fen"] == FEN and record["decoder"] == "argmax" and record["a1"] == "bottom-left"
    assert record["corners"]["bottom_left"] == pytest.approx(CORNERS_A1_BOTTOM_LEFT[3].tolist())
    assert record["squares"]["e1"]["piece"] == "K" and 0.5 < record["squares"]["e1"]["confidence"] <= 1
    assert len(record["squares"]) == 64
    assert {"read", "crops", "model", "decode", "total"} <= set(record["timings_ms"])
    assert main(["predict", str(path), "--corners", corners, "--a1", "bottom-left", "--single-view"]) == 0
    assert capsys.readouterr().out.strip() == FEN
    assert main(["predict", str(path), "--corners", corners, "--a1", "bottom-left", "--promotion-cost", "0"]) == 0
    assert capsys.readouterr().out.strip() == FEN


def _predict_error(argv, capsys) -> str:
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_predict_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    good = tmp_path / "board.jpg"
    Image.fromarray(photo(FEN, CORNERS_A1_BOTTOM_LEFT)).save(good)
    corners = ",".join(f"{v:g}" for v in CORNERS_A1_BOTTOM_LEFT.ravel())
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a photo")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])

    assert "not an image" in _predict_error([str(not_image), "--corners", corners], capsys)
    assert "truncated" in _predict_error([str(truncated), "--corners", corners], capsys).lower()
    assert "not found" in _predict_error([str(tmp_path / "missing.jpg"), "--corners", corners], capsys)
    assert "outside" in _predict_error([str(good), "--corners", "0,0,900,0,900,900,0,900"], capsys)
    assert "8 numbers" in _predict_error([str(good), "--corners", "1,2,3"], capsys)
    missing_model = _predict_error([str(good), "--corners", corners, "--a1", "bottom-left",
                                    "--model", str(tmp_path / "none.ckpt")], capsys)
    assert "none.ckpt" in missing_model and "not found" in missing_model
    assert "--promotion-cost" in _predict_error([str(good), "--corners", corners, "--promotion-cost", "-2"], capsys)


def test_parse_corners_accepts_any_separator_spacing():
    np.testing.assert_allclose(parse_corners("1, 2,3,4; 5,6,7,8"), [[1, 2], [3, 4], [5, 6], [7, 8]])


def test_json_squares_follow_python_chess_names(stand_in_model):
    result = recognize(photo(FEN, CORNERS_A1_BOTTOM_LEFT), corners=CORNERS_A1_BOTTOM_LEFT, a1="bottom-left",
                       model=stand_in_model)
    squares = result.to_json()["squares"]
    board = chess.Board(FEN + " w KQkq - 0 1")
    for square in chess.SQUARES:
        piece = board.piece_at(square)
        assert squares[chess.square_name(square)]["piece"] == (piece.symbol() if piece else ".")


def test_a_large_jpeg_is_decoded_reduced_and_corners_stay_in_the_photos_pixels(stand_in_model, tmp_path):
    from chessrec.imageio import read_rgb_reduced

    big_corners = CORNERS_A1_BOTTOM_LEFT * 8
    big = photo(FEN, big_corners, size=(480 * 8, 400 * 8))
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=92)
    pixels, factor = read_rgb_reduced(path, min_long_side=recognize_module.READ_LONG_SIDE)
    assert factor == 2 and pixels.shape == (1600, 1920, 3)  # 3840 px long side, read at 1920 >= 1440
    result = recognize(path, corners=big_corners, a1="bottom-left", model=stand_in_model)
    assert result.fen == FEN
    np.testing.assert_allclose(result.corners[3], big_corners[3], atol=1)  # a1 corner, full-size pixels
    assert read_rgb_reduced(tmp_path / "big.jpg")[1] == 1  # without a minimum side: full size


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (3000, 3000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 9 MP is then over twice the limit
    err = _predict_error([str(path), "--corners", "1,1,2000,1,2000,2000,1,2000"], capsys)
    assert "bomb.png" in err and "refused" in err and "9000000 pixels" in err


def test_the_pipelines_model_takes_precedence_over_the_released_one(tmp_path, monkeypatch):
    from chessrec.inference import loader

    released, pipeline = tmp_path / "released.ckpt", tmp_path / "models" / "classifier.ckpt"
    released.write_bytes(b"x")
    monkeypatch.setattr(loader, "RELEASED_MODEL", released)
    monkeypatch.setattr(loader, "DEFAULT_MODEL", pipeline)
    assert loader.default_model() == released
    pipeline.parent.mkdir()
    pipeline.write_bytes(b"x")
    assert loader.default_model() == pipeline

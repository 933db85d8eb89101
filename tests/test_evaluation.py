"""The evaluation suite: metrics on crafted predictions, and the stage's outputs on disk."""

from __future__ import annotations

import json

import chess
import numpy as np
import pytest

from chessrec.decoding import DecodeOptions
from chessrec.errors import UserError
from chessrec.evaluation import headline_metrics, run_evaluation, write_outputs
from chessrec.labels import CLASS_NAMES, EMPTY, labels_from_board
from chessrec.metrics import (
    board_metrics,
    confusion_matrix,
    evaluate_predictions,
    game_sequences,
    per_class_scores,
    square_accuracy_interval,
    true_moves,
    wilson_interval,
)

ALL_DECODERS = ["argmax", "greedy", "constrained", "topk_legal", "continuity"]


def _game(sans: list[str]) -> np.ndarray:
    board = chess.Board()
    frames = [labels_from_board(board)]
    for san in sans:
        board.push_san(san)
        frames.append(labels_from_board(board))
    return np.array(frames)


def _probs(labels: np.ndarray, p: float = 0.9) -> np.ndarray:
    probs = np.full((*labels.shape, 13), (1 - p) / 12, dtype=np.float32)
    np.put_along_axis(probs, labels[..., None], p, axis=-1)
    return probs


def test_board_metrics_count_errors_per_board():
    true = np.full((4, 64), EMPTY)
    pred = true.copy()
    pred[1, 0] = 0  # one error (an occupancy error)
    pred[2, :3] = 1  # three errors
    true[3, 5], pred[3, 5] = 2, 3  # a piece confused with another: occupancy still right
    m = board_metrics(pred, true)
    assert m["board_acc"] == 0.25
    assert m["board_acc_le1"] == 0.75
    assert m["errors_per_board"] == pytest.approx(5 / 4)
    assert m["square_acc"] == pytest.approx(1 - 5 / 256)
    assert m["occupancy_acc"] == pytest.approx(1 - 4 / 256)
    assert m["board_acc_low"] < m["board_acc"] < m["board_acc_high"]
    assert m["square_acc_low"] <= m["square_acc"] <= m["square_acc_high"]


def test_board_accuracy_interval_is_wilson_and_stays_informative_at_100_percent():
    assert wilson_interval(200, 200)[0] == pytest.approx(0.9812, abs=1e-4)  # not 100% +- 0
    low, high = wilson_interval(120, 200)  # 60% of 200 boards: about +-7 points
    assert (low, high) == (pytest.approx(0.5308, abs=1e-4), pytest.approx(0.6653, abs=1e-4))


def test_square_accuracy_interval_resamples_boards_not_squares():
    # 100 boards: half read perfectly, half with 8 errors each -> squares are far from independent
    correct = np.array([64] * 50 + [56] * 50)
    low, high = square_accuracy_interval(correct)
    p, n_squares = correct.sum() / 6400, 6400
    naive_half = 1.96 * np.sqrt(p * (1 - p) / n_squares)  # treating 6400 squares as independent trials
    assert low < p < high and (high - low) / 2 > 1.5 * naive_half


def test_per_class_scores_from_confusion():
    true = np.array([[0, 0, 1, EMPTY]])
    pred = np.array([[0, 1, 1, EMPTY]])
    cm = confusion_matrix(pred, true)
    assert cm[0, 1] == 1 and cm.sum() == 4
    scores = per_class_scores(cm)
    assert scores[CLASS_NAMES[0]] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores[CLASS_NAMES[1]]["precision"] == 0.5
    assert scores[CLASS_NAMES[7]] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_game_sequences_order_frames_by_move_within_each_game():
    sequences = game_sequences(np.array(["b", "a", "b", "a"]), np.array([3, 2, 1, 0]))
    assert [s.tolist() for s in sequences] == [[3, 1], [2, 0]]


def test_true_moves_skip_gaps_longer_than_two_plies():
    frames = _game(["e4", "e5", "Nf3", "Nc6", "Bb5"])[[0, 1, 3, 5]]  # gaps of 2 and 2 plies
    truth = true_moves(frames, [np.arange(4)])
    assert truth == {1: ("e4",), 2: ("e5", "Nf3"), 3: ("Nc6", "Bb5")}
    assert true_moves(_game(["e4", "e5", "Nf3"])[[0, 3]], [np.arange(2)]) == {}


def test_domain_decoders_beat_argmax_on_identical_outputs():
    frames = _game(["e4", "e5", "Nf3", "Nc6", "Bb5", "a6"])
    probs = _probs(frames)
    # a second white king looks likely on one frame, a pawn on the eighth rank on another
    probs[2, chess.D5] = 0.02
    probs[2, chess.D5, 5] = 0.6
    probs[4, chess.A8] = 0.02
    probs[4, chess.A8, 6] = 0.5
    ev = evaluate_predictions(probs, frames, np.zeros(len(frames), str), np.arange(len(frames)), ALL_DECODERS)
    assert ev.metrics["argmax"]["board_acc"] == pytest.approx(5 / 7)
    for name in ("constrained", "topk_legal", "continuity"):
        assert ev.metrics[name]["board_acc"] == 1.0, name
    assert ev.metrics["continuity"]["move_recall"] == 1.0
    assert ev.metrics["argmax"]["move_recall"] == pytest.approx(2 / 6)  # moves between two correct boards only
    assert ev.metrics["argmax"]["valid_rate"] < 1.0
    assert all(m["latency_p95_ms"] >= m["latency_p50_ms"] > 0 for m in ev.metrics.values())


def test_outputs_nest_metrics_per_decoder_and_write_tables_and_plots(tmp_path):
    from dvclive import Live

    frames = _game(["d4", "d5", "c4"])
    ev = evaluate_predictions(_probs(frames), frames, np.zeros(4, str), np.arange(4), ["argmax", "constrained"])
    flat = headline_metrics(ev, "constrained")
    flat.update({"latency/model_p50_ms": 1.0, "latency/model_p95_ms": 2.0, "energy/inference_j_per_board": 0.1,
                 "energy/measured": 0.0})
    crops = np.zeros((4, 64, 3, 16, 8), np.uint8)
    with Live(str(tmp_path), report=None, save_dvc_exp=False, dvcyaml=False) as live:
        write_outputs(ev, flat, live, tmp_path, crops, frames, np.array([0.001]), "constrained",
                      {"methods": {"cpu": "cpu-time-estimate"}}, mirrored=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["board_acc"] == 1.0
    assert set(metrics["decoders"]) == {"argmax", "constrained"}
    assert metrics["decoders"]["argmax"]["move_recall"] == 1.0
    table = (tmp_path / "decoders.md").read_text()
    assert "| constrained (best) |" in table and "| argmax |" in table and "ESTIMATED" in table
    for png in ("decoders.png", "confusion_matrix.png", "worst_boards.png", "latency.png"):
        assert (tmp_path / "plots" / "images" / png).stat().st_size > 1000
    confusion = json.loads((tmp_path / "plots" / "sklearn" / "confusion_matrix.json").read_text())
    assert len(confusion) == 4 * 64


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real checkpoint from the training code: one quick epoch on random 8x8 plain crops."""
    from chessrec.config import validate_params
    from chessrec.features import write_arrays
    from chessrec.training import fit

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    params = validate_params({
        "features": {"crop": "plain", "size": 8, "mirror": False, "extra_inputs": True},
        "model": {"name": "tiny_cnn", "width": 4, "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 512},
    })
    frames = _game(["e4", "e5", "Nf3", "Nc6"])
    for split in ("train", "val", "test"):
        write_arrays(root / f"{split}", {
            "crops_square": rng.integers(0, 256, (len(frames), 64, 3, 8, 8), dtype=np.uint8),
            "labels": frames,
            "game_id": np.array(["g1"] * len(frames)),
            "move_id": np.arange(len(frames)),
            "image_path": np.array([f"{i}.jpg" for i in range(len(frames))]),
        })
    fit(params, root, root / "model.ckpt", logger=False, callbacks=[])
    return root


def test_run_evaluation_writes_every_contracted_metric(tiny_model, tmp_path):
    out = tmp_path / "evaluate"
    flat = run_evaluation(tiny_model / "test", tiny_model / "model.ckpt", out, ALL_DECODERS, "topk_legal",
                          topk=4, energy={"sample_interval_s": 0.05}, latency_boards=2)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("square_acc", "board_acc", "errors_per_board"):
        assert metrics[key] == metrics["decoders"]["topk_legal"][key] == flat[key]
    for name in ALL_DECODERS:
        assert {"square_acc", "board_acc", "board_acc_le1", "errors_per_board", "occupancy_acc", "latency_p50_ms",
                "latency_p95_ms", "move_recall"} <= set(metrics["decoders"][name])
    assert metrics["latency"]["model_p95_ms"] >= metrics["latency"]["model_p50_ms"] > 0
    assert metrics["energy"]["inference_j_per_board"] >= 0
    energy = json.loads((out / "energy.json").read_text())
    assert metrics["energy"]["measured"] == float(energy["measured"]) and energy["methods"]


def test_run_evaluation_rejects_bad_settings(tiny_model, tmp_path):
    with pytest.raises(UserError, match="best_decoder"):
        run_evaluation(tiny_model / "test", tiny_model / "model.ckpt", tmp_path, ["argmax"], "constrained")
    with pytest.raises(UserError, match="unknown decoder"):
        run_evaluation(tiny_model / "test", tiny_model / "model.ckpt", tmp_path, ["viterbi"], "viterbi")
    with pytest.raises(UserError, match="not found"):
        run_evaluation(tiny_model / "test", tmp_path / "none.ckpt", tmp_path, ["argmax"], "argmax")
    assert not (tmp_path / "metrics.json").exists()


def test_decode_options_reach_every_decoder():
    study = np.full((2, 64), EMPTY)
    study[:, 10] = 4  # a lone white queen: only non-strict decoding keeps it as it is
    ev = evaluate_predictions(_probs(study), study, np.array(["s1", "s2"]), np.zeros(2, int), ALL_DECODERS,
                              DecodeOptions(strict=False))
    assert all(m["board_acc"] == 1.0 for m in ev.metrics.values())

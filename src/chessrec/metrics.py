"""Scoring decoded boards against the truth: the figures every evaluation reports, in one place.

Pure functions of arrays (no plots, no dvclive, no model), so the ``evaluate`` stage, scripts and
benchmarks compute each figure the same way.  :func:`evaluate_predictions` decodes identical
probabilities with each decoder and scores them all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from chessrec.decoding import (
    SEQUENCE_DECODERS,
    DecodeOptions,
    check_decoder,
    decode_sequence,
    follow_moves,
    roots_of,
)
from chessrec.errors import UserError
from chessrec.labels import CLASS_NAMES, EMPTY, NUM_CLASSES


@dataclass(frozen=True)
class DecoderRun:
    """One decoder's output over the test boards (in input order)."""

    name: str
    labels: np.ndarray  # (N, 64)
    valid: np.ndarray  # (N,) bool
    moves: list[tuple[str, ...]]
    latency_s: np.ndarray  # (N,) decoding time per board


def game_sequences(game_id: np.ndarray, move_id: np.ndarray) -> list[np.ndarray]:
    """Board indices grouped by game, each in move order: the frames continuity decodes as a chain."""
    game_id, move_id = np.asarray(game_id).astype(str), np.asarray(move_id)
    return [np.flatnonzero(game_id == g)[np.argsort(move_id[game_id == g], kind="stable")] for g in np.unique(game_id)]


def run_decoder(name: str, probs: np.ndarray, sequences: list[np.ndarray], options: DecodeOptions) -> DecoderRun:
    """Decode all boards; a sequence decoder's time per game is shared evenly among its frames."""
    n = probs.shape[0]
    labels = np.empty((n, 64), dtype=np.int64)
    valid = np.empty(n, dtype=bool)
    moves: list[tuple[str, ...]] = [()] * n
    latency = np.empty(n)
    chunks = sequences if name in SEQUENCE_DECODERS else [np.array([i]) for i in range(n)]
    for idx in tqdm(chunks, desc=f"decode {name}", unit="game" if name in SEQUENCE_DECODERS else "board", leave=False, disable=None):
        start = time.perf_counter()
        decoded = decode_sequence(name, probs[idx], options)
        latency[idx] = (time.perf_counter() - start) / len(idx)
        for i, d in zip(idx, decoded):
            labels[i], valid[i], moves[i] = d.labels, d.valid, d.moves
    return DecoderRun(name, labels, valid, moves, latency)


#: coverage of every accuracy interval the evaluation reports
CONFIDENCE = 0.95
_Z = 1.959963984540054  # standard normal quantile of (1 + CONFIDENCE) / 2
BOOTSTRAP_RESAMPLES = 2000


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: sound at 0 and 1 and for a few hundred trials,
    where the normal approximation would claim a board accuracy of 100% +- 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
    half = _Z * np.sqrt(p * (1 - p) / n + _Z**2 / (4 * n**2)) / (1 + _Z**2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def square_accuracy_interval(correct_per_board: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the square accuracy, resampling whole boards.

    The 64 squares of one photo share its camera, light and set, so they are not 64 independent
    trials: resampling squares would make the interval several times too narrow.
    """
    correct = np.asarray(correct_per_board, dtype=np.float64)
    if correct.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, correct.size, (BOOTSTRAP_RESAMPLES, correct.size))].mean(axis=1) / 64
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def board_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Per-square and per-board correctness of (N, 64) predicted against true class ids, with the
    95% intervals of both accuracies (``*_low``, ``*_high``; see :func:`wilson_interval` and
    :func:`square_accuracy_interval`)."""
    errors = (pred != true).sum(axis=1)
    square_low, square_high = square_accuracy_interval(64 - errors)
    board_low, board_high = wilson_interval(int((errors == 0).sum()), len(errors))
    return {
        "square_acc": float((pred == true).mean()),
        "square_acc_low": square_low,
        "square_acc_high": square_high,
        "board_acc": float((errors == 0).mean()),
        "board_acc_low": board_low,
        "board_acc_high": board_high,
        "board_acc_le1": float((errors <= 1).mean()),
        "errors_per_board": float(errors.mean()),
        "occupancy_acc": float(((pred == EMPTY) == (true == EMPTY)).mean()),
    }


def confusion_matrix(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(13, 13) counts, rows = true class, columns = predicted class."""
    return np.bincount(true.ravel() * NUM_CLASSES + pred.ravel(), minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def per_class_scores(confusion: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support)
    }


def true_moves(labels: np.ndarray, sequences: list[np.ndarray]) -> dict[int, tuple[str, ...]]:
    """For each frame after the first of a game, the moves (SAN) that led to it from the previous frame.

    The game is followed from its first frame, so the side to move is known once a move is seen.
    Frames not reachable by at most two legal moves (gaps in the recording) are left out and the
    game is picked up again from them.
    """
    found = {}
    for idx in sequences:
        roots = roots_of(labels[idx[0]])
        for cur in idx[1:]:
            step = follow_moves(roots, labels[cur])
            if step is None:
                roots = roots_of(labels[cur])
                continue
            if step[0]:
                found[int(cur)] = step[0]
                roots = [step[1]]
    return found


def move_recall(run: DecoderRun, truth: dict[int, tuple[str, ...]], true_labels: np.ndarray,
                sequences: list[np.ndarray]) -> float:
    """Share of the games' moves a decoder recovers (NaN when the test set has no moves).

    ``continuity`` states its moves; for a decoder of single boards, a transition's moves count as
    recovered when both of its boards are read exactly (moves are then read off unambiguously).
    """
    total = sum(len(m) for m in truth.values())
    if total == 0:
        return float("nan")
    correct = (run.labels == true_labels).all(axis=1)
    previous = {int(cur): int(prev) for idx in sequences for prev, cur in zip(idx[:-1], idx[1:])}
    recovered = 0
    for frame, moves in truth.items():
        if run.name in SEQUENCE_DECODERS:
            recovered += len(moves) if run.moves[frame] == moves else 0
        elif correct[frame] and correct[previous[frame]]:
            recovered += len(moves)
    return recovered / total


@dataclass(frozen=True)
class Evaluation:
    """All decoders' results on one test set, with the figures derived from them."""

    runs: dict[str, DecoderRun]
    metrics: dict[str, dict[str, float]]  # decoder -> metric -> value
    confusion: dict[str, np.ndarray]
    per_class: dict[str, dict[str, dict[str, float]]]


def evaluate_predictions(probs: np.ndarray, labels: np.ndarray, game_id: np.ndarray, move_id: np.ndarray,
                         decoders: Sequence[str], options: DecodeOptions = DecodeOptions()) -> Evaluation:
    """Decode identical (N, 64, 13) probabilities with each decoder and score against (N, 64) labels."""
    if probs.shape[:2] != labels.shape or probs.shape[1:] != (64, NUM_CLASSES):
        raise UserError(f"probabilities {probs.shape} do not match labels {labels.shape}")
    sequences = game_sequences(game_id, move_id)
    truth = true_moves(labels, sequences)
    runs, metrics, confusion, per_class = {}, {}, {}, {}
    for name in decoders:
        run = runs[name] = run_decoder(check_decoder(name), probs, sequences, options)
        metrics[name] = {
            **board_metrics(run.labels, labels),
            "valid_rate": float(run.valid.mean()),
            "move_recall": move_recall(run, truth, labels, sequences),
            "latency_p50_ms": float(np.percentile(run.latency_s, 50) * 1e3),
            "latency_p95_ms": float(np.percentile(run.latency_s, 95) * 1e3),
        }
        confusion[name] = confusion_matrix(run.labels, labels)
        per_class[name] = per_class_scores(confusion[name])
    return Evaluation(runs, metrics, confusion, per_class)

"""Decoding a game: positions linked by legal moves, frame after frame, as a stream.

A single frame's decode trusts the classifier alone; in a game, each position is a few legal
moves from the last one, so a frame is decoded as the most probable position reachable from the
previous decoded one.  :class:`GameTracker` does this one frame at a time (``push``), keeping the
python-chess boards and ``chess.Move`` s a PGN needs; the ``continuity`` decoder is the same
tracker run over a recorded game.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import chess
import numpy as np

from chessrec.decoding.board import Decoded, DecodeOptions, best_log_prob, log_probs_of, topk_legal
from chessrec.labels import EMPTY, board_from_labels


def _masks(board: chess.Board) -> list[int]:
    return [board.pawns, board.rooks, board.knights, board.bishops, board.queens, board.kings,
            board.occupied_co[chess.WHITE], board.occupied_co[chess.BLACK]]


def _placements(masks: list[list[int]]) -> np.ndarray:
    """(M, 12, 64) bool piece occupancy from per-board bitboards (see :func:`_masks`), in class-id order."""
    if not masks:
        return np.zeros((0, 12, 64), dtype=bool)
    bits = np.unpackbits(np.array(masks, dtype=np.uint64).view(np.uint8).reshape(len(masks), 8, 8), axis=2,
                         bitorder="little").astype(bool)
    kinds, colours = bits[:, :6], bits[:, 6:]
    return np.concatenate((kinds & colours[:, :1], kinds & colours[:, 1:]), axis=1)


def _labels_of_placement(placement: np.ndarray) -> np.ndarray:
    return np.where(placement.any(axis=0), placement.argmax(axis=0), EMPTY).astype(np.int64)


def roots_of(labels: np.ndarray) -> list[chess.Board]:
    """The positions a decoded placement may stand for: each side to move that python-chess accepts.

    Castling rights are assumed wherever king and rook stand on their original squares.
    """
    roots = []
    for turn in (chess.WHITE, chess.BLACK):
        board = board_from_labels(labels, turn)
        board.castling_rights = chess.BB_CORNERS
        board.castling_rights = board.clean_castling_rights()
        if board.is_valid():
            roots.append(board)
    return roots


def reachable(roots: Sequence[chess.Board], max_plies: int) -> tuple[list[tuple[chess.Board, tuple[chess.Move, ...]]], np.ndarray]:
    """Positions reachable from the roots by 0..max_plies legal moves, with their (M, 12, 64) placements.

    Each entry is (root, moves); entries come in order of increasing ply count, so ties go to fewer moves.
    """
    entries: list[tuple[chess.Board, tuple[chess.Move, ...]]] = []
    masks: list[list[int]] = []

    def visit(root: chess.Board, board: chess.Board, moves: tuple[chess.Move, ...], depth: int) -> None:
        if depth == 0:
            return
        for move in list(board.legal_moves):
            board.push(move)
            entries.append((root, (*moves, move)))
            masks.append(_masks(board))
            visit(root, board, (*moves, move), depth - 1)
            board.pop()

    for root in roots:
        entries.append((root, ()))
        masks.append(_masks(root))
    for root in roots:
        visit(root, root.copy(stack=False), (), max_plies)
    order = sorted(range(len(entries)), key=lambda i: len(entries[i][1]))  # stable: fewest moves first
    return [entries[i] for i in order], _placements([masks[i] for i in order])


def placement_scores(log_probs: np.ndarray, placements: np.ndarray) -> np.ndarray:
    """Summed log-probability of each (M, 12, 64) placement under one frame's (64, 13) log-probabilities."""
    gains = log_probs[:, :12].T - log_probs[:, EMPTY][None, :]  # (12, 64): piece instead of empty
    return log_probs[:, EMPTY].sum() + np.einsum("mcs,cs->m", placements, gains)


def _san(root: chess.Board, moves: Sequence[chess.Move]) -> tuple[str, ...]:
    board = root.copy(stack=False)
    sans = []
    for move in moves:
        sans.append(board.san(move))
        board.push(move)
    return tuple(sans)


def _after(root: chess.Board, moves: Sequence[chess.Move]) -> chess.Board:
    board = root.copy(stack=False)
    for move in moves:
        board.push(move)
    return board


def follow_moves(roots: Sequence[chess.Board], target: np.ndarray,
                 max_plies: int = 2) -> tuple[tuple[str, ...], chess.Board] | None:
    """The shortest legal move sequence (SAN) from one of the roots to the target placement, with the board after."""
    target = np.asarray(target)
    for plies in range(max_plies + 1):
        entries, placements = reachable(roots, plies)
        for (root, moves), placement in zip(entries, placements):
            if len(moves) == plies and np.array_equal(_labels_of_placement(placement), target):
                return _san(root, moves), _after(root, moves)
    return None


def moves_between(before: np.ndarray, after: np.ndarray, max_plies: int = 2) -> tuple[str, ...] | None:
    """The shortest legal move sequence (SAN) turning one placement into another, either side moving first."""
    found = follow_moves(roots_of(before), after, max_plies)
    return None if found is None else found[0]


@dataclass(frozen=True)
class TrackedFrame:
    """One frame as the tracker decoded it.

    ``decoded``: the position (its ``moves`` in SAN); ``moves``: the same moves as ``chess.Move`` s,
    played from ``before``; ``positions``: the positions the frame may stand for (one once a move
    has fixed the side to move, else one per side python-chess accepts); ``restarted``: the chain
    broke here (no legal continuation explained the frame) and starts again from its own decode.
    """

    decoded: Decoded
    moves: tuple[chess.Move, ...] = ()
    before: chess.Board | None = None
    positions: tuple[chess.Board, ...] = field(default=())
    restarted: bool = False


class GameTracker:
    """The streaming form of the ``continuity`` decoder: ``push`` one frame's probabilities at a time.

    Candidates for a frame are the positions 0 to ``options.max_plies`` legal moves from the previous
    decoded position, with either side to move until a move has fixed it; a candidate's score is its
    summed log-probability.  When the best candidate trails the frame's most probable reading under the
    rules (:func:`best_log_prob`) by more than ``options.break_margin`` nats (moves missed, a new game,
    a misread frame), the frame is decoded on its own with ``topk_legal`` and the chain restarts there.
    """

    def __init__(self, options: DecodeOptions = DecodeOptions()):
        self.options = options
        self.roots: list[chess.Board] = []
        self.frames: list[TrackedFrame] = []
        self._reachable: tuple[list[chess.Board], int, tuple] | None = None  # (roots, max plies, reachable)

    def _candidates(self) -> tuple:
        """:func:`reachable` from the current roots, searched once per roots: a video shows each
        position for several frames, and the search (~900 positions at two plies) cost more than
        the rest of the tracker."""
        plies = self.options.max_plies
        if self._reachable is None or self._reachable[0] is not self.roots or self._reachable[1] != plies:
            self._reachable = (self.roots, plies, reachable(self.roots, plies))
        return self._reachable[2]

    def push(self, probs: np.ndarray) -> TrackedFrame:
        """Decode the next frame from its (64, 13) class probabilities."""
        return self.push_log_probs(log_probs_of(probs))

    def push_log_probs(self, log_probs: np.ndarray) -> TrackedFrame:
        """Decode the next frame from its floored (64, 13) log-probabilities (:func:`log_probs_of`)."""
        options = self.options
        own = best_log_prob(log_probs, options)
        best = None
        if self.roots:
            entries, placements = self._candidates()
            scores = placement_scores(log_probs, placements)
            index = int(np.argmax(scores))  # first maximum = fewest moves
            if scores[index] >= own - options.break_margin:
                best = (entries[index], placements[index], float(scores[index]))
        if best is None:
            decoded = topk_legal(log_probs, options)
            self.roots = roots_of(decoded.labels)
            frame = TrackedFrame(decoded, positions=tuple(self.roots), restarted=True)
        else:
            (root, moves), placement, score = best
            decoded = Decoded(_labels_of_placement(placement), score, True, _san(root, moves))
            if moves:  # the move fixes the side to move; without one, every root stays possible
                self.roots = [_after(root, moves)]
            frame = TrackedFrame(decoded, tuple(moves), root, tuple(self.roots))
        self.frames.append(frame)
        return frame


def continuity(log_probs_seq: np.ndarray, options: DecodeOptions) -> list[Decoded]:
    """Decode one game's frames in order, each as the most probable position reachable from the last.

    The batch form of :class:`GameTracker` (same decisions, frame for frame).
    """
    tracker = GameTracker(options)
    return [tracker.push_log_probs(log_probs).decoded for log_probs in np.asarray(log_probs_seq)]

"""Decoders of one board: 64 x 13 class log-probabilities -> a position, with and without chess knowledge.

- ``argmax``: every square on its own (the domain-free baseline);
- ``greedy``: a LiveChess2FEN-style greedy pass with per-type caps, for comparison;
- ``constrained``: the exact best board under the piece-count rules (:func:`board_score`);
- ``topk_legal``: the first of the k best rule-abiding boards that python-chess accepts.

Piece-count rules (strict mode), per side: exactly one king; at most 8 pawns; no pawn on rank 1 or 8;
promoted pieces (queens beyond 1, rooks and knights beyond 2, bishops beyond one per square colour: a
side's own bishops never leave their colour) at most the number of missing pawns, hence at most 16
pieces.  Promotions are rare in real games, so strict decoders also charge a board
``DecodeOptions.promotion_cost`` nats for each promoted piece it holds: the most probable board under
a prior that says so (0 charges nothing, counts only).  Non-strict mode (study and composition
positions) drops the king, count and colour rules and the charge but keeps "no pawn on the first or
last rank", which no position can break; ``topk_legal`` then skips python-chess's validity check too.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import chess
import numpy as np
from scipy.optimize import linear_sum_assignment

from chessrec.errors import UserError
from chessrec.labels import EMPTY, NUM_CLASSES, board_from_labels

#: log-probabilities are floored here so that a zero probability stays finite and exactness holds.
LOG_FLOOR = -50.0

# class ids per side (white offset 0, black offset 6), in labels.CLASS_NAMES order
PAWN, ROOK, KNIGHT, BISHOP, QUEEN, KING = range(6)
_SIDES = (0, 6)
#: pieces each side starts with; anything beyond is a promotion paid for by a missing pawn
_INITIAL = {QUEEN: 1, ROOK: 2, BISHOP: 2, KNIGHT: 2}
_BACK_RANKS = np.r_[0:8, 56:64]
#: squares a1..h8 that are light (a1 is dark)
_LIGHT_SQUARES = (np.arange(64) // 8 + np.arange(64) % 8) % 2 == 1
#: nats a strict decode charges per promoted piece (chosen on the default run's validation boards, where
#: 3-8 read alike; docs/correctness.md, "Promotions are rare, bishops keep their colour")
PROMOTION_COST = 4.0

# Slots of the assignment formulation, per side: the king, the initial officers (one bishop slot per
# square colour), and 8 "pawn slots" that hold either a pawn or a promoted officer, which pays the
# promotion cost.  Filling slots with squares enumerates exactly the boards that obey the count rules,
# each at its own cost, so a rectangular assignment over 64 squares x (32 slots + 64 empties) solves the
# constrained decode exactly.
_SLOT_CLASS: list[int] = []  # class id of a fixed-type slot; 13 (White) or 14 (Black) for a pawn slot
for _offset in _SIDES:
    for _cls, _n in ((KING, 1), *_INITIAL.items(), (PAWN, 8)):
        _SLOT_CLASS += [NUM_CLASSES + _offset // 6 if _cls == PAWN else _offset + _cls] * _n
_N_SLOTS = len(_SLOT_CLASS)
#: per assignment column, its column in the extended cost (13 classes + one pawn slot per side)
_COLUMN_SOURCE = np.array(_SLOT_CLASS + [EMPTY] * 64)
_IS_KING_COLUMN = np.isin(_COLUMN_SOURCE, [KING, 6 + KING])
#: (64 squares, columns): where a column may not go; a side's first bishop slot takes light squares only,
#: its second dark ones
_COLUMN_FORBIDDEN = np.zeros((64, len(_COLUMN_SOURCE)), dtype=bool)
for _offset in _SIDES:
    _light_slot, _dark_slot = np.flatnonzero(_COLUMN_SOURCE == _offset + BISHOP)
    _COLUMN_FORBIDDEN[~_LIGHT_SQUARES, _light_slot] = True
    _COLUMN_FORBIDDEN[_LIGHT_SQUARES, _dark_slot] = True
#: subtracted from the king columns' cost: makes them mandatory whenever some square may hold a king
_COLUMN_BONUS = np.where(_IS_KING_COLUMN, 1e5, 0.0)
#: classes a pawn slot may hold, per side: a pawn or a promoted officer
_PAWN_SLOT_CLASSES = np.array([[o + PAWN, o + QUEEN, o + ROOK, o + BISHOP, o + KNIGHT] for o in _SIDES])
_INFEASIBLE = 1e7  # cost of a forbidden (square, class); far above any board's total -log p


@dataclass(frozen=True)
class DecodeOptions:
    """How decoders trade chess knowledge against the classifier's word."""

    strict: bool = True
    topk: int = 32
    #: nats by which the best reachable position may trail the frame's own decode before the chain breaks
    break_margin: float = 12.0
    #: plies searched between consecutive frames (2 = one missed frame)
    max_plies: int = 2
    #: nats a strict decode charges per promoted piece (0: the count rules alone)
    promotion_cost: float = PROMOTION_COST

    def __post_init__(self) -> None:
        if self.topk < 1:
            raise UserError(f"evaluate.topk must be >= 1, got {self.topk}")
        if not 0 <= self.promotion_cost < 1e3:
            raise UserError(f"the promotion cost (evaluate.promotion_cost, --promotion-cost) must be >= 0 and "
                            f"< 1000 nats, got {self.promotion_cost}")
        if not self.break_margin > 0:
            raise UserError(f"break_margin must be > 0, got {self.break_margin}")
        if self.max_plies not in (0, 1, 2):
            raise UserError(f"max_plies must be 0, 1 or 2, got {self.max_plies}")


@dataclass(frozen=True)
class Decoded:
    """One decoded board: class ids a1..h8, their summed log-probability, and whether it is a legal position."""

    labels: np.ndarray
    log_prob: float
    valid: bool
    moves: tuple[str, ...] = field(default=())


def log_probs_of(probs: np.ndarray) -> np.ndarray:
    """Floored natural-log probabilities, float64, of a (..., 64, 13) probability array."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-2:] != (64, NUM_CLASSES):
        raise UserError(f"expected class probabilities of shape (..., 64, {NUM_CLASSES}), got {probs.shape}")
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(probs), LOG_FLOOR)


def board_log_prob(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(log_probs[np.arange(64), labels].sum())


def promoted_pieces(labels: np.ndarray) -> int:
    """Pieces beyond the two sides' initial sets: the fewest promotions that can explain the board."""
    labels = np.asarray(labels)
    promoted = 0
    for offset in _SIDES:
        for cls, n in ((QUEEN, 1), (ROOK, 2), (KNIGHT, 2)):
            promoted += max(0, int(np.count_nonzero(labels == offset + cls)) - n)
        bishops = labels == offset + BISHOP
        promoted += max(0, int(np.count_nonzero(bishops & _LIGHT_SQUARES)) - 1)
        promoted += max(0, int(np.count_nonzero(bishops & ~_LIGHT_SQUARES)) - 1)
    return promoted


def board_score(log_probs: np.ndarray, labels: np.ndarray, promotion_cost: float) -> float:
    """What strict decoders maximise: the board's log-probability less the charge for its promotions."""
    return board_log_prob(log_probs, labels) - promotion_cost * promoted_pieces(labels)


def decode_score(log_probs: np.ndarray, labels: np.ndarray, options: DecodeOptions) -> float:
    """What ``constrained`` maximises under ``options``: :func:`board_score` when strict, else the
    log-probability (non-strict decoding charges nothing)."""
    return board_score(log_probs, labels, options.promotion_cost if options.strict else 0.0)


def is_valid_position(labels: np.ndarray) -> bool:
    """Whether python-chess accepts the placement as a position with either side to move.

    The side to move cannot be seen in a photo, so a board counts as valid when it is valid for White
    or for Black to move (no castling rights, no en-passant square).
    """
    board = board_from_labels(labels)
    if board.is_valid():
        return True
    board.turn = chess.BLACK
    return board.is_valid()


def _decoded(log_probs: np.ndarray, labels: np.ndarray, moves: tuple[str, ...] = ()) -> Decoded:
    labels = np.asarray(labels, dtype=np.int64)
    return Decoded(labels, board_log_prob(log_probs, labels), is_valid_position(labels), moves)


def _base_allowed() -> np.ndarray:
    """(64, 13) mask of (square, class) pairs any position allows: no pawns on the first or last rank."""
    allowed = np.ones((64, NUM_CLASSES), dtype=bool)
    allowed[np.ix_(_BACK_RANKS, [PAWN, 6 + PAWN])] = False
    return allowed


_ALLOWED = _base_allowed()


# --------------------------------------------------------------------------------------------- solvers
def _solve_free(log_probs: np.ndarray, allowed: np.ndarray) -> np.ndarray | None:
    """Best board without count rules: each square's most probable allowed class."""
    if not allowed.any(axis=1).all():
        return None
    return np.where(allowed, log_probs, -np.inf).argmax(axis=1)


def _solve_counts(log_probs: np.ndarray, allowed: np.ndarray, promotion_cost: float) -> np.ndarray | None:
    """Exact best board under the piece-count and bishop-colour rules (:func:`board_score`), as a
    rectangular assignment.

    Returns None when the allowed (square, class) pairs admit no such board (e.g. no square may hold a king).
    """
    cost = np.where(allowed, -log_probs, _INFEASIBLE)
    pawn_slot_costs = cost[:, _PAWN_SLOT_CLASSES]  # (64, 2 sides, 5 classes: the pawn, then promotions)
    pawn_slot_costs[:, :, 1:] += promotion_cost
    pawn_slot_choice = pawn_slot_costs.argmin(axis=2)
    extended = np.concatenate((cost, pawn_slot_costs.min(axis=2)), axis=1)
    slot_cost = np.where(_COLUMN_FORBIDDEN, _INFEASIBLE, extended[:, _COLUMN_SOURCE]) - _COLUMN_BONUS
    rows, cols = linear_sum_assignment(slot_cost)
    if np.count_nonzero(_IS_KING_COLUMN[cols]) < 2 or (slot_cost[rows, cols] >= _INFEASIBLE / 2).any():
        return None
    source = _COLUMN_SOURCE[cols]
    side = np.minimum(np.maximum(source - NUM_CLASSES, 0), 1)
    pawn_slot_class = _PAWN_SLOT_CLASSES[side, pawn_slot_choice[rows, side]]
    labels = np.empty(64, dtype=np.int64)
    labels[rows] = np.where(source < NUM_CLASSES, source, pawn_slot_class)
    return labels


def _solver(strict: bool, promotion_cost: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
    return functools.partial(_solve_counts, promotion_cost=promotion_cost) if strict else _solve_free


def k_best_boards(log_probs: np.ndarray, k: int, strict: bool = True,
                  promotion_cost: float = PROMOTION_COST) -> Iterator[np.ndarray]:
    """The k best rule-abiding boards by :func:`board_score` (strict) or log-probability, best first
    (Lawler's partitioning, lazily bounded).

    After a board is taken, the rest of its subspace is split into disjoint parts ("squares before i
    as in this board, square i different").  Each part is first queued with a cheap upper bound (every
    square at its best allowed class, counts and charges ignored) and only solved exactly when it
    reaches the front of the queue, so confident squares, whose parts never get there, cost nothing.
    """
    solve = _solver(strict, promotion_cost)
    charge = promotion_cost if strict else 0.0
    counter = itertools.count()
    first = solve(log_probs, _ALLOWED)
    if first is None:
        return
    # heap entries: (-score, tiebreak, exact, payload); payload is (allowed, labels) or (allowed, labels, order, i)
    heap: list = [(-board_score(log_probs, first, charge), next(counter), True, (_ALLOWED, first))]
    produced = 0
    while heap and produced < k:
        neg_score, _, exact, payload = heapq.heappop(heap)
        if not exact:
            allowed = _child_allowed(*payload)
            labels = solve(log_probs, allowed)
            if labels is not None:
                heapq.heappush(heap, (-board_score(log_probs, labels, charge), next(counter), True, (allowed, labels)))
            continue
        allowed, labels = payload
        yield labels
        produced += 1
        _push_children(heap, counter, log_probs, allowed, labels, -neg_score)


def _child_allowed(allowed: np.ndarray, labels: np.ndarray, order: np.ndarray, i: int) -> np.ndarray:
    child = allowed.copy()
    fixed = order[:i]
    child[fixed] = False
    child[fixed, labels[fixed]] = True
    child[order[i], labels[order[i]]] = False
    return child


def _push_children(heap, counter, log_probs, allowed, labels, score) -> None:
    """Queue the parts of a taken board's subspace, each bounded by the board's own score (the best
    in its subspace) and by its squares' best log-probabilities (charges only lower a score)."""
    free = np.flatnonzero(allowed.sum(axis=1) > 1)
    if free.size == 0:
        return
    chosen = log_probs[free, labels[free]]
    alternatives = np.where(allowed[free], log_probs[free], -np.inf)
    alternatives[np.arange(free.size), labels[free]] = -np.inf
    alt_best = alternatives.max(axis=1)
    by_margin = np.argsort(chosen - alt_best, kind="stable")  # least certain squares branch first
    order, chosen, alt_best = free[by_margin], chosen[by_margin], alt_best[by_margin]
    best = np.maximum(chosen, alt_best)
    fixed_score = board_log_prob(log_probs, labels) - chosen.sum()  # squares with a single allowed class
    prefix = np.concatenate(([0.0], np.cumsum(chosen)[:-1]))
    suffix = np.concatenate((np.cumsum(best[::-1])[::-1][1:], [0.0]))
    bounds = np.minimum(score, fixed_score + prefix + alt_best + suffix)
    for i, bound in enumerate(bounds.tolist()):
        if bound != -np.inf:
            heapq.heappush(heap, (-bound, next(counter), False, (allowed, labels, order, i)))


# -------------------------------------------------------------------------------------------- decoders
def argmax(log_probs: np.ndarray, options: DecodeOptions) -> Decoded:
    return _decoded(log_probs, log_probs.argmax(axis=1))


def greedy(log_probs: np.ndarray, options: DecodeOptions) -> Decoded:
    """LiveChess2FEN-style: most confident squares first, each takes its best class still under its cap.

    Caps per side: 1 king, 8 pawns (never on the first or last rank), 16 pieces, and for officers the
    initial number plus 8 (any count a promotion could reach); afterwards a missing king is put on the
    square most likely to hold it.  Non-strict mode only keeps pawns off the back ranks.
    """
    if not options.strict:
        return _decoded(log_probs, _solve_free(log_probs, _ALLOWED))
    caps = {KING: 1, PAWN: 8, **{t: n + 8 for t, n in _INITIAL.items()}}
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    side_total = {0: 0, 6: 0}
    labels = np.full(64, EMPTY, dtype=np.int64)
    masked = np.where(_ALLOWED, log_probs, -np.inf)
    for square in np.argsort(-masked.max(axis=1), kind="stable"):
        for cls in np.argsort(-masked[square], kind="stable"):
            if cls == EMPTY:
                break
            side = 6 if cls >= 6 else 0
            if np.isfinite(masked[square, cls]) and counts[cls] < caps[cls - side] and side_total[side] < 16:
                labels[square] = cls
                counts[cls] += 1
                side_total[side] += 1
                break
    for king, other_king in ((KING, 6 + KING), (6 + KING, KING)):
        if counts[king] == 0:
            candidates = np.flatnonzero(labels != other_king)
            labels[candidates[np.argmax(log_probs[candidates, king])]] = king
    return _decoded(log_probs, labels)


def constrained(log_probs: np.ndarray, options: DecodeOptions) -> Decoded:
    labels = _solver(options.strict, options.promotion_cost)(log_probs, _ALLOWED)
    if labels is None:  # unreachable with the base mask, kept as a guard against future rules
        return argmax(log_probs, options)
    return _decoded(log_probs, labels)


def best_log_prob(log_probs: np.ndarray, options: DecodeOptions) -> float:
    """The log-probability of the frame's most probable reading under the rules, uncharged: what game
    decoders measure a history's reading against (a history pays for its promotions with moves)."""
    return constrained(log_probs, dataclasses.replace(options, promotion_cost=0.0)).log_prob


def topk_legal(log_probs: np.ndarray, options: DecodeOptions) -> Decoded:
    """The best of the k best rule-abiding boards that is a valid position; else the best one."""
    if not options.strict:
        return constrained(log_probs, options)
    best = None
    for labels in k_best_boards(log_probs, options.topk, strict=True, promotion_cost=options.promotion_cost):
        if is_valid_position(labels):
            return Decoded(labels, board_log_prob(log_probs, labels), True)
        best = labels if best is None else best
    return _decoded(log_probs, best) if best is not None else argmax(log_probs, options)

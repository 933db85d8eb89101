"""Decoding a game as its most probable legal move sequence over all frames (a beam search).

:class:`~chessrec.decoding.game.GameTracker` decides each frame once, from its previous decision:
a misread frame sends it down a wrong line that later frames can break but never undo.
:class:`GameBeam` keeps the ``beam_width`` most probable histories instead (a Viterbi beam over
positions, one per position reached), so later frames outvote an earlier misreading; a frame that
no continuation explains is skipped at a price of ``skip_penalty`` nats rather than breaking the
game.  "Explains" is measured against the frame's own best reading less the *misfit* the game has
shown so far (the median gap of the best history's last read frames): a fixed camera over a fixed
set misreads the same squares frame after frame, and those persistent errors must not pass for a
frame nothing explains (``persistent_misreadings``).  A run of ``restart_after`` unexplained
frames first reads the best continuations anyway (new persistent misreadings), and only when even
those fit worse than ``max_misfit`` (moves missed, a new game) starts the search again from the
frame's own reading.  ``beam`` is the batch form: it reads every frame of a recorded game and
returns the positions of the single best history, a smoother rather than a filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import chess
import numpy as np

from chessrec.decoding.board import (
    Decoded,
    DecodeOptions,
    best_log_prob,
    board_log_prob,
    constrained,
    is_valid_position,
    k_best_boards,
)
from chessrec.decoding.game import _after, _labels_of_placement, _san, placement_scores, reachable, roots_of
from chessrec.errors import UserError
from chessrec.labels import labels_from_board


@dataclass(frozen=True)
class BeamOptions:
    """How wide the search is and what ignoring a frame costs."""

    beam_width: int = 6
    #: nats a history pays for declaring a frame misread (a move read on two wrong squares costs ~10)
    skip_penalty: float = 12.0
    #: consecutive skipped frames after which the best history is abandoned and the search reseeded
    restart_after: int = 3
    #: histories within this many nats of the best must agree on a move before it is committed (below
    #: skip_penalty, or the best history with its last frame skipped would always veto the commit)
    commit_margin: float = 6.0
    #: nats each move beyond the first between two decoded frames costs: a still period holds one move
    #: as a rule, so a line that needs more (a piece that went and came back) must earn them
    extra_ply_penalty: float = 6.0
    #: search two plies on only when one ply leaves the frame this many nats below its own reading
    deepen_margin: float = 3.0
    #: nats a history pays for going back to the position one or two plies before (moves taken back: an
    #: illegal move put right by the arbiter).  Below extra_ply_penalty, so that a board back where it
    #: stood two plies ago reads as a takeback, as electronic boards read it, not as two moves that
    #: undo each other within one still period.  None never considers it
    takeback_penalty: float | None = 5.0
    #: the frames come from one fixed camera, which misreads the same squares in each: "explained" is
    #: measured against the game's own misfit.  False for photos each from its own camera, whose
    #: misreadings are independent: a frame that fits badly is then evidence of a misreading
    persistent_misreadings: bool = True
    #: read frames of the best history whose misfit (own reading less the history's, nats) sets the baseline
    misfit_frames: int = 8
    #: the baseline's ceiling: a game whose first frames fit this badly is not being followed at all
    max_misfit: float = 60.0

    def __post_init__(self) -> None:
        if self.beam_width < 1:
            raise UserError(f"beam_width must be >= 1, got {self.beam_width}")
        if not self.skip_penalty > 0 or not self.commit_margin >= 0:
            raise UserError(f"skip_penalty must be > 0 and commit_margin >= 0, got {self.skip_penalty}, "
                            f"{self.commit_margin}")
        if self.restart_after < 1:
            raise UserError(f"restart_after must be >= 1, got {self.restart_after}")
        if self.misfit_frames < 1 or not self.max_misfit >= 0:
            raise UserError(f"misfit_frames must be >= 1 and max_misfit >= 0, got {self.misfit_frames}, "
                            f"{self.max_misfit}")


@dataclass(frozen=True)
class _Step:
    """One frame of a history, linked to the frame before (histories share their common past)."""

    frame: int
    board: chess.Board  # the position the history stands in after this frame
    labels: np.ndarray  # the same position's placement
    moves: tuple[chess.Move, ...]  # played since the previous step's position
    skipped: bool  # the frame was declared misread: labels carry the previous position
    restarted: bool
    parent: _Step | None
    misfit: float = 0.0  # the frame's own best reading less this step's reading of it (nats; read steps)
    taken_back: int = 0  # plies this step took back (the board returned to an earlier position of the line)


@dataclass(frozen=True)
class Hypothesis:
    """A history of the game so far: its position, summed log-probability and its frames."""

    score: float
    step: _Step
    misses: int = 0  # frames skipped in a row, up to the last one

    @property
    def board(self) -> chess.Board:
        """The position this history stands in: its last step's."""
        return self.step.board

    def steps(self) -> list[_Step]:
        out, step = [], self.step
        while step is not None:
            out.append(step)
            step = step.parent
        return out[::-1]

    def line(self) -> list[_Step]:
        """The steps played out from the first position: up to the first restart (the game lost), if any."""
        steps = self.steps()
        return steps[:next((i for i, step in enumerate(steps) if i > 0 and step.restarted), len(steps))]

    def moves(self) -> list[chess.Move]:
        """The moves of :meth:`line`, takebacks applied: a legal sequence from the first position."""
        return [move for move, _ in _played(self.line())]

    def confirmed_plies(self) -> list[tuple[chess.Move, int]]:
        """(move, frame that first showed it) for the moves of :meth:`line` that a later frame, read
        and not skipped, has seen standing (a takeback, likewise, once a later frame has seen it)."""
        steps = self.line()
        last_read = max((i for i, step in enumerate(steps) if not step.skipped), default=0)
        return _played(steps[:last_read])

    def confirmed_moves(self) -> list[chess.Move]:
        return [move for move, _ in self.confirmed_plies()]


def _played(steps: Sequence[_Step]) -> list[tuple[chess.Move, int]]:
    """(move, frame) of the moves the steps play, in order, less those a later step took back."""
    plies: list[tuple[chess.Move, int]] = []
    for step in steps:
        del plies[len(plies) - step.taken_back:]
        plies += [(move, step.frame) for move in step.moves]
    return plies


def _positions_back(h: Hypothesis, plies: int) -> list[tuple[int, chess.Board]]:
    """(k, board) for the positions 1..``plies`` plies back along the history's current line (since its
    last restart, if any): where a takeback returns."""
    out, back, step = [], 0, h.step
    while step is not None and back < plies:
        if step.parent is None or step.restarted or step.taken_back:
            break  # the line's start; one takeback at a time: what it restored is not taken back through it
        if not step.moves:
            step = step.parent
            continue
        before = step.parent.board
        boards = [_after(before, step.moves[:i]) for i in range(len(step.moves) - 1, -1, -1)]
        for board in boards:
            back += 1
            if back > plies:
                break
            out.append((back, board))
        step = step.parent
    return out


def _key(board: chess.Board) -> tuple:
    return board.board_fen(), board.turn, board.castling_rights, board.ep_square


class GameBeam:
    """Streaming beam decoder: ``push`` one frame's log-probabilities at a time.

    ``start``: the position the game starts from (a broadcast knows it); without one the first
    frame seeds the beam with its ``beam_width`` most probable legal readings, either side to move.
    """

    def __init__(self, options: DecodeOptions = DecodeOptions(), beam: BeamOptions = BeamOptions(),
                 start: chess.Board | None = None):
        self.options, self.beam_options = options, beam
        self.start = start
        self.frames = 0
        self.hypotheses: list[Hypothesis] = []
        if start is not None:
            step = _Step(-1, start.copy(stack=False), labels_from_board(start), (), False, False, None)
            self.hypotheses = [Hypothesis(0.0, step)]

    @property
    def best(self) -> Hypothesis:
        if not self.hypotheses:
            raise ValueError("no frame has been pushed yet")
        return self.hypotheses[0]

    def misfit(self) -> float | None:
        """How badly this game's frames are usually explained (nats; None before any frame was read).

        The median misfit of the best history's last ``misfit_frames`` read frames, or its last read
        frame's if that is higher: a move can bring new persistent misreadings, and the frames
        after it fit as badly as it did.
        """
        misfits, step = [], self.best.step if self.hypotheses else None
        while step is not None and len(misfits) < self.beam_options.misfit_frames:
            if not step.skipped and step.frame >= 0:
                misfits.append(step.misfit)
            step = step.parent
        return max(float(np.median(misfits)), misfits[0]) if misfits else None

    def _seed(self, log_probs: np.ndarray, base: float, parent: _Step | None) -> list[Hypothesis]:
        """Histories starting at this frame's most probable legal readings (one per side to move).

        Uncharged for promotions: a history's later frames judge its seed, and seeds ranked with the
        charge read fewer of the default run's test boards (81.8% against 82.8%; docs/correctness.md).
        """
        seeds, own = [], best_log_prob(log_probs, self.options)
        for labels in k_best_boards(log_probs, self.options.topk, strict=True, promotion_cost=0.0):
            for root in roots_of(labels):
                score = board_log_prob(log_probs, labels)
                step = _Step(self.frames, root, labels, (), False, True, parent, max(own - score, 0.0))
                seeds.append(Hypothesis(base + score, step))
            if len(seeds) >= self.beam_options.beam_width:
                break
        if not seeds:  # nothing legal among the k best: carry the frame's own reading, unplayable
            labels = constrained(log_probs, self.options).labels
            step = _Step(self.frames, chess.Board(None), labels, (), False, True, parent)
            seeds = [Hypothesis(base + board_log_prob(log_probs, labels), step)]
        return seeds

    def push(self, log_probs: np.ndarray, max_plies: int | None = None) -> Hypothesis:
        """Extend every history by this frame (floored (64, 13) log-probabilities); returns the best.

        ``max_plies``: moves that can have happened since the previous frame (default
        ``options.max_plies``); 0 when the caller knows the board stood still in between.
        """
        beam = self.beam_options
        if not self.hypotheses:
            self.hypotheses = self._prune(self._seed(log_probs, 0.0, None))
        else:
            own = best_log_prob(log_probs, self.options)
            playable = [h for h in self.hypotheses if h.board.king(chess.WHITE) is not None]  # not unplayable seeds
            limit = self.options.max_plies if max_plies is None else min(max_plies, self.options.max_plies)
            misfit = self.misfit() if beam.persistent_misreadings else 0.0
            if misfit is None:  # the first frame: the game's best one-ply explanation of it sets the baseline
                misfit = self._first_misfit(playable, log_probs, own, limit)
            expansions = self._with_takebacks(playable, self._expand(playable, log_probs, own - misfit, limit),
                                              log_probs, limit)
            ranked = self._rank(playable, expansions, log_probs, own, own - misfit)
            if not ranked or ranked[0].misses >= beam.restart_after:
                # frames in a row that fit no history as well as the game's frames used to: more likely new
                # persistent misreadings (a piece moved where the camera reads it badly) than garbage, as long
                # as some continuation still fits within max_misfit: read the best ones before giving up
                best = max((float(e[2].max()) for e in expansions if len(e[2])), default=-np.inf)
                if best >= own - beam.max_misfit:
                    ranked = self._rank(playable, expansions, log_probs, own, best)
            if not ranked or ranked[0].misses >= beam.restart_after:
                base = ranked[0].score if ranked else 0.0
                parent = ranked[0].step if ranked else None
                ranked = self._prune(self._seed(log_probs, base, parent))
            self.hypotheses = ranked
        self.frames += 1
        return self.best

    def _with_takebacks(self, playable: list[Hypothesis], expansions: list[tuple], log_probs: np.ndarray,
                        max_plies: int) -> list[tuple]:
        """Each history's continuations plus its positions one and two plies back, at ``takeback_penalty``."""
        penalty = self.beam_options.takeback_penalty
        if penalty is None or max_plies == 0:
            return [(entries, placements, scores, [0] * len(entries)) for entries, placements, scores in expansions]
        out = []
        for h, (entries, placements, scores) in zip(playable, expansions):
            back = _positions_back(h, 2)
            if not back:
                out.append((entries, placements, scores, [0] * len(entries)))
                continue
            _, earlier = reachable([board for _, board in back], 0)
            out.append(([*entries, *((board, ()) for _, board in back)],
                        np.concatenate([placements, earlier]),
                        np.concatenate([scores, placement_scores(log_probs, earlier) - penalty]),
                        [0] * len(entries) + [k for k, _ in back]))
        return out

    def _rank(self, playable: list[Hypothesis], expansions: list[tuple], log_probs: np.ndarray, own: float,
              reference: float) -> list[Hypothesis]:
        """The beam after this frame: each history's continuations that explain it within ``skip_penalty``
        of ``reference`` (one per position reached, the most probable), and each history's skip."""
        beam = self.beam_options
        candidates: dict[tuple, Hypothesis] = {}

        def offer(key: tuple, h: Hypothesis) -> None:
            if key not in candidates or h.score > candidates[key].score:
                candidates[key] = h

        for h, (entries, placements, scores, taken_back) in zip(playable, expansions):
            # a continuation that explains the frame worse than calling it misread is no explanation:
            # the history's skip (below) stands for it, and junk cannot crowd the beam
            explained = np.flatnonzero(scores > reference - beam.skip_penalty)
            kept = explained[np.argsort(-scores[explained], kind="stable")][:beam.beam_width]
            fits = placement_scores(log_probs, placements[kept])  # the frame's fit, without the move penalties
            for i, fit in zip(kept, fits):
                root, moves = entries[i]
                board = _after(root, moves)
                step = _Step(self.frames, board, _labels_of_placement(placements[i]), moves, False, False, h.step,
                             own - float(fit), taken_back[i])
                offer(_key(board), Hypothesis(h.score + float(scores[i]), step))
        for h in self.hypotheses:
            skip = _Step(self.frames, h.board, h.step.labels, (), True, False, h.step)
            # a skip is scored against the reference fit of a frame: it costs skip_penalty more
            candidates.setdefault(("skip", *_key(h.board)),
                                  Hypothesis(h.score + reference - beam.skip_penalty, skip, h.misses + 1))
        return self._prune(list(candidates.values()))

    def _first_misfit(self, hypotheses: list[Hypothesis], log_probs: np.ndarray, own: float, max_plies: int) -> float:
        """How far the best continuation (one ply at most) falls short of the frame's own reading."""
        best = max((placement_scores(log_probs, reachable([h.board], min(1, max_plies))[1]).max()
                    for h in hypotheses), default=own)
        return min(max(own - float(best), 0.0), self.beam_options.max_misfit)

    def _expand(self, hypotheses: list[Hypothesis], log_probs: np.ndarray, reference: float,
                max_plies: int) -> list[tuple]:
        """Each history's positions 0..max_plies moves on, with their frame scores.

        Two plies cost ~30x one: they are searched only when no history's one-ply continuation
        comes within ``deepen_margin`` nats of ``reference`` (the frame's own reading less the
        game's misfit: a missed frame, a fast reply).
        """
        expansions = []
        for plies in range(min(1, max_plies), max_plies + 1):
            expansions = []
            for h in hypotheses:
                entries, placements = reachable([h.board], plies)
                extra = np.array([max(len(moves) - 1, 0) for _, moves in entries])
                scores = placement_scores(log_probs, placements) - self.beam_options.extra_ply_penalty * extra
                expansions.append((entries, placements, scores))
            if max((e[2].max() for e in expansions), default=-np.inf) >= reference - self.beam_options.deepen_margin:
                break
        return expansions

    def _prune(self, hypotheses: list[Hypothesis]) -> list[Hypothesis]:
        return sorted(hypotheses, key=lambda h: -h.score)[:self.beam_options.beam_width]

    def committed_moves(self) -> list[chess.Move]:
        """The moves safe to publish: confirmed by a later frame read (not skipped) in every history
        within ``commit_margin`` nats of the best, and the same in all of them."""
        close = [h for h in self.hypotheses if h.score >= self.best.score - self.beam_options.commit_margin]
        committed = []
        for plies in zip(*(h.confirmed_moves() for h in close)):
            if any(move != plies[0] for move in plies[1:]):
                break
            committed.append(plies[0])
        return committed


def _positions_between(board: chess.Board, moves: Sequence[chess.Move]) -> list[np.ndarray]:
    """The positions after each of the moves, then the one before them: a frame skipped between two
    read ones most likely shows a move already made, so ties go to the moves."""
    start, board = labels_from_board(board), board.copy(stack=False)
    positions = []
    for move in moves:
        board.push(move)
        positions.append(labels_from_board(board))
    return [*positions, start]


def decode_best_history(log_probs_seq: np.ndarray, options: DecodeOptions, beam: BeamOptions = BeamOptions(),
                        start: chess.Board | None = None) -> list[Decoded]:
    """Each frame's position on the most probable history of the whole recorded game.

    A frame the history skipped is given the position, among those the history passes through
    between its neighbours, that the frame's own probabilities favour.
    """
    log_probs_seq = np.asarray(log_probs_seq)
    decoder = GameBeam(options, beam, start)
    for log_probs in log_probs_seq:
        decoder.push(log_probs)
    decoded: list[Decoded | None] = [None] * len(log_probs_seq)
    before: _Step | None = None  # the last step whose frame was read, not skipped
    pending: list[_Step] = []
    for step in decoder.best.steps():
        if step.skipped:
            pending.append(step)
            continue
        follows = before is not None and not step.restarted and before.board.king(chess.WHITE) is not None
        between = _positions_between(before.board, step.moves) if follows else [step.labels]
        if step.taken_back:  # frames skipped just before a takeback may show where it returned to
            between.append(step.labels)
        for skipped in pending:
            decoded[skipped.frame] = _best_of(log_probs_seq[skipped.frame], between, valid=follows)
        pending = []
        if step.frame >= 0:
            lp = log_probs_seq[step.frame]
            sans = _san(before.board, step.moves) if follows else ()
            decoded[step.frame] = Decoded(step.labels, board_log_prob(lp, step.labels), True, sans)
        before = step
    for skipped in pending:  # trailing skipped frames: the last position the history reached
        decoded[skipped.frame] = _best_of(log_probs_seq[skipped.frame], [skipped.labels], valid=True)
    return decoded  # type: ignore[return-value]


def _best_of(log_probs: np.ndarray, positions: list[np.ndarray], valid: bool) -> Decoded:
    labels = max(positions, key=lambda labels: board_log_prob(log_probs, labels))
    return Decoded(labels, board_log_prob(log_probs, labels), valid and is_valid_position(labels))


def beam(log_probs_seq: np.ndarray, options: DecodeOptions) -> list[Decoded]:
    """The ``beam`` sequence decoder: photos of one game, each from its own camera (the test split's
    games), -> positions of its best history.  Their misreadings are independent, so no misfit is kept;
    the rest (reading the best continuations before a restart, takebacks) is as in a broadcast."""
    return decode_best_history(log_probs_seq, options, BeamOptions(persistent_misreadings=False))

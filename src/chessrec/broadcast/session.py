"""One broadcast: frames in, the game followed with the beam decoder, PGN and events out.

Per frame: keep the board lock (re-locate only when it has failed for ``relocate_after`` frames
in a row: a hand over the board breaks the lock's check for a moment, a moved camera for good),
measure motion on the warped board, and on each still period's settled frame and its confirmation
(:mod:`chessrec.broadcast.settle`) classify the squares and push them to
:class:`chessrec.decoding.GameBeam`.  The PGN holds the
moves every close history agrees on and a later frame has confirmed; a correction rewrites it.
Each decode logs its latency, the decode margin (best history against the runner-up, nats) and
the classifier's confidence, and a drop of the rolling confidence is reported as drift.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import chess
import numpy as np

from chessrec.broadcast.frames import Frame
from chessrec.broadcast.pgn import BroadcastOutputs
from chessrec.broadcast.settle import SettleDetector, SettleOptions, board_grey
from chessrec.decoding import BeamOptions, DecodeOptions, GameBeam, log_probs_of
from chessrec.errors import UserError
from chessrec.geometry import order_corners
from chessrec.labels import labels_from_board
from chessrec.recognize import Recognizer


@dataclass(frozen=True)
class BroadcastOptions:
    beam: BeamOptions = field(default_factory=BeamOptions)
    settle: SettleOptions = field(default_factory=SettleOptions)
    #: frames in a row the lock may fail (a hand, a shadow) before the board is located again
    relocate_after: int = 10
    #: settled decodes per rolling confidence window; drift = the window's mean below the first's by ``drift_drop``
    drift_window: int = 10
    drift_drop: float = 0.05
    #: seconds after the frame that showed a move when the best history's reading of it is published even
    #: if a close rival still disagrees (a later correction rewrites the PGN): a broadcast cannot wait
    max_delay_s: float = 1.5

    def __post_init__(self) -> None:
        if not self.max_delay_s >= 0:
            raise UserError(f"max_delay_s must be >= 0, got {self.max_delay_s}")


@dataclass
class BroadcastSummary:
    frames: int = 0
    decodes: int = 0
    skipped_frames: int = 0  # settled frames the best history declared misread
    relocations: int = 0
    no_board_frames: int = 0
    decode_ms: list[float] = field(default_factory=list)
    drift_warnings: int = 0
    corrections: int = 0  # PGN rewrites that changed a published move


class BroadcastSession:
    """Follow one game from its frames.  ``corners``/``a1`` fix the board for a camera known to be still."""

    def __init__(self, recognizer: Recognizer, outputs: BroadcastOutputs, start: chess.Board,
                 options: BroadcastOptions = BroadcastOptions(), corners: np.ndarray | None = None,
                 a1: str | None = None, decode_options: DecodeOptions = DecodeOptions()):
        self.recognizer, self.outputs, self.options = recognizer, outputs, options
        self.beam = GameBeam(decode_options, options.beam, start)
        self.settle = SettleDetector(options.settle)
        self.fixed_corners = None if corners is None else order_corners(np.asarray(corners, dtype=float), a1 or "bottom-left")
        self.summary = BroadcastSummary()
        self.lock_failures = 0
        self.confidences: deque[float] = deque(maxlen=options.drift_window)
        self.reference_confidence: float | None = None
        self.drifting = False
        self.lost = False  # warned once: the game is lost, the PGN keeps what was followed
        self.fit_pending = False  # a board was located: fit it to the game's position on the next settled frame
        self.decode_times: list[float] = []  # stream time of each frame pushed to the beam
        self._decoded_at = -1  # beam.frames when the best history's moves below were read
        self._best_moves: list[chess.Move] = []
        self._confirmed: list[tuple[chess.Move, int]] = []
        self._committed = 0

    # --------------------------------------------------------------------------------- the board
    def board_corners(self, frame: Frame) -> np.ndarray | None:
        """Corners (a8, h8, h1, a1) of the board in this frame: fixed, locked, or located again."""
        if self.fixed_corners is not None:
            return self.fixed_corners
        recognizer = self.recognizer
        if recognizer.lock is not None:
            if recognizer.lock_holds(frame.pixels):
                self.lock_failures = 0
                return recognizer.lock.corners
            self.lock_failures += 1
            if self.lock_failures < self.options.relocate_after:
                return recognizer.lock.corners  # most likely a hand: keep the lock for now
        try:
            recognizer.unlock()
            recognizer.recognize(frame.pixels)  # locates, orients and locks
        except UserError as exc:
            self.summary.no_board_frames += 1
            self.outputs.event({"event": "no_board", "frame": frame.index, "t": round(frame.time_s, 3),
                                "reason": str(exc)})
            return None
        self.lock_failures = 0
        self.summary.relocations += 1
        self.fit_pending = True
        self.settle.reset()
        self.outputs.event({"event": "located", "frame": frame.index, "t": round(frame.time_s, 3),
                            "a1": recognizer.lock.a1,
                            "corners": np.round(recognizer.lock.corners, 1).tolist()})
        return recognizer.lock.corners

    def fit_located_board(self, frame: Frame, board_corners: np.ndarray) -> np.ndarray:
        """The located board put right by the position the game stands in (one square off, a1 wrong).

        Done on a settled frame (no hand over the board), once per location.
        """
        self.fit_pending = False
        best = self.beam.best.board if self.beam.hypotheses else None
        if best is None or best.king(chess.WHITE) is None:  # no playable position to fit to
            return board_corners
        corners, a1, gain = self.recognizer.fit_to_position(frame.pixels, board_corners, labels_from_board(best))
        if gain > 0:
            self.recognizer.lock_board(frame.pixels, corners, a1)
            self.settle.previous = board_grey(frame.pixels, corners)  # the new warp is not motion
            self.outputs.event({"event": "refitted", "frame": frame.index, "t": round(frame.time_s, 3), "a1": a1,
                                "corners": np.round(corners, 1).tolist(), "gain": round(gain, 2)})
        return corners

    def probabilities(self, frame: Frame, board_corners: np.ndarray) -> np.ndarray:
        """(64, 13) class probabilities of the board in this frame."""
        return self.recognizer.classify(self.recognizer.crop(frame.pixels, board_corners))

    # -------------------------------------------------------------------------------- the stream
    def feed(self, frame: Frame) -> dict | None:
        """Process one frame; returns the decode event when the frame was decoded."""
        self.summary.frames += 1
        board_corners = self.board_corners(frame)
        if board_corners is None:
            return None
        decode_now, motion = self.settle.push(board_grey(frame.pixels, board_corners), frame.time_s)
        if not decode_now:
            update = self._publish(frame.time_s)  # a move may have come due
            if update is not None:
                self.outputs.event({"event": "publish", "frame": frame.index, "t": round(frame.time_s, 3),
                                    "plies": len(self.outputs.published), "update": update, "reason": "deadline"})
            return None
        t0 = time.perf_counter()
        if self.fit_pending and self.fixed_corners is None:
            board_corners = self.fit_located_board(frame, board_corners)
        probs = self.probabilities(frame, board_corners)
        # a confirmation follows its period's first decode with no motion between: nothing can have moved
        best = self.beam.push(log_probs_of(probs), max_plies=0 if self.settle.confirming else None)
        if self.fixed_corners is None:  # settled: the board as it stands now is the reference, the more so
            # when the game's best history explains what the lock showed
            self.recognizer.refresh_lock(frame.pixels, trusted=not (best.step.skipped or best.step.restarted))
        self.decode_times.append(frame.time_s)
        update = self._publish(frame.time_s)
        latency_ms = (time.perf_counter() - t0) * 1e3
        hypotheses = self.beam.hypotheses
        margin = best.score - hypotheses[1].score if len(hypotheses) > 1 else float("inf")
        confidence = float(probs.max(axis=1).mean())
        summary = self.summary
        summary.decodes += 1
        summary.skipped_frames += int(best.step.skipped)
        summary.decode_ms.append(latency_ms)
        event = {"event": "decode", "frame": frame.index, "t": round(frame.time_s, 3), "motion": round(motion, 2),
                 "latency_ms": round(latency_ms, 2), "margin": round(min(margin, 1e9), 2),
                 "confidence": round(confidence, 4), "skipped": best.step.skipped,
                 "taken_back": best.step.taken_back,
                 "plies": len(self.outputs.published), "update": update}
        self.outputs.event(event)
        if best.step.restarted and not self.lost:  # no history from the start explains the frames: the line is lost
            self.lost = True
            message = (f"frame {frame.index}: no legal continuation of the game explains the board; the PGN keeps "
                       f"the {len(self.outputs.published)} plies followed so far")
            self.outputs.event({"event": "lost", "frame": frame.index, "t": round(frame.time_s, 3), "message": message})
            print(f"chessrec broadcast: warning: {message}", file=sys.stderr)
        self._watch_drift(frame, confidence)
        return event

    def _publish(self, now_s: float) -> str | None:
        update = self.outputs.publish(self.publishable(now_s))
        self.summary.corrections += int(update == "correction")
        return update

    def publishable(self, now_s: float) -> list[chess.Move]:
        """The moves the PGN should show now: the best history's confirmed moves as far as every close
        history agrees (:meth:`GameBeam.committed_moves`), as far as ``max_delay_s`` has passed since the
        frame that showed them, and never fewer than the published moves the best history still plays."""
        if not self.beam.hypotheses:
            return self.outputs.published
        if self._decoded_at != self.beam.frames:  # the histories change only at a decode: read them once
            best = self.beam.best
            self._decoded_at = self.beam.frames
            self._best_moves, self._confirmed = best.moves(), best.confirmed_plies()
            self._committed = len(self.beam.committed_moves())
        published, confirmed = self.outputs.published, [move for move, _ in self._confirmed]
        due = sum(1 for _, frame in self._confirmed
                  if now_s - self.decode_times[frame] >= self.options.max_delay_s - 1e-6)
        # the best history's moves extend its confirmed ones, except while a takeback awaits its confirmation:
        # then the confirmed ones (the taken-back moves still in) stand until a later frame confirms it
        in_best, in_confirmed = _common_prefix(published, self._best_moves), _common_prefix(published, confirmed)
        base = self._best_moves if in_best >= in_confirmed else confirmed
        return base[:max(self._committed, due, in_best, in_confirmed)]

    def _watch_drift(self, frame: Frame, confidence: float) -> None:
        self.confidences.append(confidence)
        if len(self.confidences) < self.confidences.maxlen:
            return
        mean = float(np.mean(self.confidences))
        if self.reference_confidence is None:
            self.reference_confidence = mean
            return
        drifting = mean < self.reference_confidence - self.options.drift_drop
        if drifting and not self.drifting:
            self.summary.drift_warnings += 1
            message = (f"confidence drifted from {self.reference_confidence:.3f} to {mean:.3f} over the last "
                       f"{len(self.confidences)} decodes: light, camera or set changed?")
            self.outputs.event({"event": "drift", "frame": frame.index, "t": round(frame.time_s, 3),
                                "message": message})
            print(f"chessrec broadcast: warning: {message}", file=sys.stderr)
        self.drifting = drifting

    def finish(self) -> list[chess.Move]:
        """At the end of the stream the best history is all the evidence there will be: publish it."""
        moves = self.beam.best.moves() if self.beam.hypotheses else []
        update = self.outputs.publish(moves)
        self.outputs.event({"event": "end", "frames": self.summary.frames, "decodes": self.summary.decodes,
                            "plies": len(moves), "update": update})
        return moves

    def run(self, frames: Iterable[Frame]) -> list[chess.Move]:
        for frame in frames:
            self.feed(frame)
        return self.finish()


def _common_prefix(a: list[chess.Move], b: list[chess.Move]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

"""Scoring broadcast with no camera: rendered games under a fixed camera, hands, noise, light drift.

Each game is played by the renderer's move policy from the initial position (exactly ``plies``
plies: a game that ends sooner is played again); every position is rendered once under the
game's camera, set and light, then shown as a video would show it: a
frame with a hand over the board (the move being made), then ``still_frames`` frames with fresh
sensor noise and a slow drift of the light.  The broadcast session follows the stream as
``chessrec broadcast`` does; the frame-by-frame ``continuity`` chain (:class:`GameTracker`) is
run on the very same decoded frames as the baseline.  Delay is counted from the first frame at
which the moved position stands still to the frame that put the move in the PGN (its decode, or
the deadline of ``max_delay_s``), plus that frame's processing time.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import chess
import cv2
import numpy as np

from chessrec.broadcast.frames import Frame
from chessrec.broadcast.pgn import BroadcastOutputs
from chessrec.broadcast.session import BroadcastOptions, BroadcastSession
from chessrec.decoding import DecodeOptions, GameTracker, log_probs_of
from chessrec.labels import labels_from_board
from chessrec.recognize import Recognizer
from chessrec.synth.positions import policy_move
from chessrec.synth.render import render_board

#: skin tones of the hand that makes each move (RGB)
HAND_COLOURS = ((224, 172, 140), (198, 134, 98), (141, 85, 36), (241, 194, 167))


@dataclass(frozen=True)
class RenderedGame:
    moves: list[chess.Move]
    frames: list[Frame]
    shows: list[int]  # the position (ply count) each frame shows, -1 for a hand frame
    corners: np.ndarray


def play_game(rng: np.random.Generator, plies: int, attempts: int = 50) -> list[chess.Move]:
    """A game of exactly ``plies`` plies by the renderer's move policy: one that ends sooner (mate,
    a draw) is played again with the next draws, so every scored game is as long as asked."""
    for _ in range(attempts):
        board, moves = chess.Board(), []
        while len(moves) < plies and not board.is_game_over():
            move = policy_move(board, rng)
            moves.append(move)
            board.push(move)
        if len(moves) == plies:
            return moves
    raise ValueError(f"no game of {plies} plies in {attempts} attempts: ask for fewer plies")


def _hand(image: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-like blob reaching over the board from its edge (the move being made)."""
    out = image.copy()
    h, w = image.shape[:2]
    edge = corners[int(rng.integers(4))] * 0.5 + corners[int(rng.integers(4))] * 0.5
    centre = edge + (corners.mean(axis=0) - edge) * rng.uniform(0.2, 0.7)
    axes = (int(w * rng.uniform(0.08, 0.16)), int(h * rng.uniform(0.05, 0.1)))
    colour = tuple(int(c) for c in HAND_COLOURS[int(rng.integers(len(HAND_COLOURS)))])
    cv2.ellipse(out, tuple(int(v) for v in centre), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return out


class _SensorNoise:
    """Sensor noise that changes from frame to frame at a fraction of the cost of drawing it.

    Four fields of Gaussian noise are drawn once per game, a little larger than the frame; each
    frame adds one of them at a random offset (so two frames of a game share their noise about once
    in 4 x 32 x 32).  Drawing each 640 px frame's noise afresh took two thirds of rendering a game
    (4.8 of 7.7 s under the profiler) and about 96 of the broadcast stage's 216 s.
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 2.0, fields: int = 4,
                 margin: int = 32):
        h, w, *channels = shape
        self.shape, self.margin = (h, w), margin
        self.fields = rng.normal(0.0, sigma, (fields, h + margin, w + margin, *channels)).astype(np.float32)

    def __call__(self, image: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
        (h, w), (dy, dx) = self.shape, rng.integers(self.margin, size=2)
        noisy = image.astype(np.float32)
        noisy *= gain
        noisy += self.fields[int(rng.integers(len(self.fields))), dy:dy + h, dx:dx + w]
        return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


def render_game(seed: int, plies: int, image_size: int, still_frames: int, fps: float) -> RenderedGame:
    rng = np.random.default_rng(seed)
    moves = play_game(rng, plies)
    board, frames, shows, corners = chess.Board(), [], [], None
    drift = rng.uniform(-0.15, 0.15)  # the light's change over the whole game
    camera_noise = _SensorNoise(rng, (image_size, image_size, 3))  # renders are square
    for ply in range(len(moves) + 1):
        render = render_board(labels_from_board(board), seed, image_size, with_ids=False)
        corners = render.corners
        gain = 1.0 + drift * ply / max(len(moves), 1)
        if ply > 0:
            frames.append(Frame(len(frames), len(frames) / fps, camera_noise(_hand(render.image, corners, rng), rng, gain)))
            shows.append(-1)
        for _ in range(still_frames):
            frames.append(Frame(len(frames), len(frames) / fps, camera_noise(render.image, rng, gain)))
            shows.append(ply)
        if ply < len(moves):
            board.push(moves[ply])
    return RenderedGame(moves, frames, shows, corners)


class TimedSession(BroadcastSession):
    """A session that notes, per ply, the frame that first published it and that frame's processing time."""

    def __init__(self, *args, truth: list[chess.Move], **kw):
        super().__init__(*args, **kw)
        self.truth, self.published_at, self.decoded_probs = truth, {}, []

    def probabilities(self, frame, board_corners):
        probs = super().probabilities(frame, board_corners)
        self.decoded_probs.append(probs)
        return probs

    def feed(self, frame):
        t0 = time.perf_counter()
        event = super().feed(frame)
        latency_ms = (time.perf_counter() - t0) * 1e3  # the whole frame's processing, lock check included
        published = self.outputs.published
        right = _moves_right(published, self.truth)  # a move counts once the PGN shows the game right up to it
        for ply in range(right):
            if ply not in self.published_at:
                self.published_at[ply] = (frame.time_s, latency_ms)
        return event


def _moves_right(moves: list[chess.Move], truth: list[chess.Move]) -> int:
    """Plies right up to the first wrong one: after it the PGN no longer shows the game."""
    right = 0
    for move, true in zip(moves, truth):
        if move != true:
            break
        right += 1
    return right


def _continuity_moves(probs: list[np.ndarray], start: chess.Board) -> list[chess.Move]:
    """The moves the frame-by-frame chain reads off the same decoded frames, while it follows the game."""
    tracker, moves = GameTracker(DecodeOptions()), []
    tracker.roots = [start.copy()]
    for p in probs:
        frame = tracker.push_log_probs(p)
        if frame.restarted:
            break  # the chain broke: what follows no longer continues the game from its start
        moves.extend(frame.moves)
    return moves


@dataclass(frozen=True)
class GameScore:
    """One rendered game followed by the session: what :func:`score_broadcast` adds up over games."""

    plies: int
    frames: int
    beam_right: int  # plies right up to the first wrong one
    continuity_right: int
    beam_game: bool  # the whole game right, nothing more
    continuity_game: bool
    corrections: int
    delays_s: list[float]
    decode_ms: list[float]
    session_s: float  # the session's own time on the game's frames (rendering not included)


def score_game(recognizer: Recognizer, game_seed: int, plies: int, image_size: int, options: BroadcastOptions,
               still_frames: int, fps: float, workdir) -> GameScore:
    """Render one game, follow it with a broadcast session, and score the session and the
    frame-by-frame ``continuity`` chain on the same decoded frames."""
    game = render_game(game_seed, plies, image_size, still_frames, fps)
    start = chess.Board()
    outputs = BroadcastOutputs(Path(workdir) / f"game{game_seed}.pgn", None, start, {})
    session = TimedSession(recognizer, outputs, start, options, truth=game.moves)
    recognizer.unlock()
    t0 = time.perf_counter()
    moves = session.run(iter(game.frames))
    session_s = time.perf_counter() - t0
    outputs.close()
    chain = _continuity_moves([log_probs_of(p) for p in session.decoded_probs], start)
    delays = []
    for ply, (time_s, latency_ms) in session.published_at.items():
        settled_s = game.frames[game.shows.index(ply + 1)].time_s  # the moved position's first still frame
        delays.append(time_s - settled_s + latency_ms / 1e3)
    return GameScore(len(game.moves), len(game.frames), _moves_right(moves, game.moves),
                     _moves_right(chain, game.moves), moves == game.moves, chain == game.moves,
                     session.summary.corrections, delays, list(session.summary.decode_ms), session_s)


_WORKER: dict = {}


def _start_worker(model_path: str) -> None:
    """A scoring process: one torch thread (the processes share the cores), its own recognizer."""
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER["recognizer"] = Recognizer(model_path)


def _score_in_worker(task: tuple) -> GameScore:
    return score_game(_WORKER["recognizer"], *task)


def score_broadcast(model_path, games: int, plies: int, image_size: int, seed: int,
                    options: BroadcastOptions = BroadcastOptions(), still_frames: int = 4,
                    fps: float = 5.0, workers: int = 1, workdir=None) -> dict[str, float]:
    """Broadcast metrics over rendered games: moves and games right (beam and continuity), delay, speed.

    With ``workers`` > 1 the games are shared among that many processes, each on one torch thread
    (a game's frames follow one another, so a game is the unit): on 2 cores the stage took 69 s
    instead of 113.  The figures are summed in game order, so they do not depend on ``workers``,
    except those that contain a time: ``decode_p50_ms``, ``frames_per_s`` and the delays (which
    include the publishing frame's processing) are then one process's, on one thread.
    """
    workers = min(workers, games)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tasks = [(seed * 1000 + g, plies, image_size, options, still_frames, fps, tmp) for g in range(games)]
        if workers > 1:
            from chessrec.inference.loader import load_model

            load_model(model_path)  # a bad model path fails here, in one line, not in every worker
            with get_context("spawn").Pool(workers, initializer=_start_worker, initargs=(str(model_path),)) as pool:
                scores = pool.map(_score_in_worker, tasks, chunksize=1)
        else:
            recognizer = Recognizer(model_path)
            scores = [score_game(recognizer, *task) for task in tasks]
    moves = sum(s.plies for s in scores)
    n_moves = max(moves, 1)
    delays = [d for s in scores for d in s.delays_s]
    decode_ms = [ms for s in scores for ms in s.decode_ms]
    wall = sum(s.session_s for s in scores)
    return {
        "games": games, "moves": moves,
        "beam/move_acc": sum(s.beam_right for s in scores) / n_moves,
        "beam/game_acc": sum(s.beam_game for s in scores) / games,
        "continuity/move_acc": sum(s.continuity_right for s in scores) / n_moves,
        "continuity/game_acc": sum(s.continuity_game for s in scores) / games,
        "beam/corrections": sum(s.corrections for s in scores),
        "delay_p50_s": float(np.median(delays)) if delays else float("nan"),
        "delay_max_s": float(np.max(delays)) if delays else float("nan"),
        "decode_p50_ms": float(np.median(decode_ms)) if decode_ms else float("nan"),
        "frames_per_s": sum(s.frames for s in scores) / wall if wall > 0 else float("nan"),
    }


def summary_table(metrics: dict[str, float]) -> str:
    """The stage's figures as a markdown table: the beam decoder beside the continuity chain."""
    rows = [f"| {name} | {metrics[f'{name}/move_acc']:.3f} | {metrics[f'{name}/game_acc']:.3f} |"
            for name in ("beam", "continuity")]
    return "\n".join([
        f"# Broadcast of {int(metrics['games'])} rendered games ({int(metrics['moves'])} plies)", "",
        "| decoder | moves right (until the first wrong one) | games entirely right |", "|---|---:|---:|", *rows, "",
        f"Delay from a move's settled frame to its PGN entry: p50 {metrics['delay_p50_s']:.2f} s, "
        f"max {metrics['delay_max_s']:.2f} s; the PGN was corrected {int(metrics['beam/corrections'])} times. "
        f"Decode p50 {metrics['decode_p50_ms']:.1f} ms; {metrics['frames_per_s']:.1f} frames/s per process.", ""])

"""``chessrec broadcast``: rendered game frames (fixed camera, a hand between moves) -> PGN."""

from __future__ import annotations

import io
import json
import socket
import urllib.request
from pathlib import Path

import chess
import chess.pgn
import cv2
import numpy as np
import pytest

from chessrec.broadcast.frames import Frame, frames_from
from chessrec.broadcast.pgn import BroadcastOutputs, start_board
from chessrec.broadcast.serve import PgnServer
from chessrec.broadcast.session import BroadcastSession
from chessrec.cli import main
from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.geometry import A1_POSITIONS, order_corners, shifted_board
from chessrec.labels import labels_from_board
from chessrec.recognize import Recognizer
from chessrec.synth.render import render_board

SANS = ["e4", "e5", "Nf3", "Nc6", "Bc4", "Bc5", "O-O", "Nf6"]
#: frames per still position, and the seed that fixes the camera, set and light of the game
STILL_FRAMES, SEED = 4, 11


def _positions(sans=SANS) -> list[chess.Board]:
    board, out = chess.Board(), [chess.Board()]
    for san in sans:
        board.push_san(san)
        out.append(board.copy())
    return out


def _hand(image: np.ndarray, corners: np.ndarray, k: int) -> np.ndarray:
    """A skin-coloured blob over part of the board: the player's hand making the move."""
    out = image.copy()
    centre = corners.mean(axis=0) + (corners[k % 4] - corners.mean(axis=0)) * 0.4
    axes = (int(image.shape[1] * 0.18), int(image.shape[0] * 0.1))
    cv2.ellipse(out, tuple(int(v) for v in centre), axes, 30.0 * k, 0, 360, (224, 172, 140), -1)
    return out


def render_game_frames(folder: Path, size: int = 320, sans=SANS) -> tuple[list[int], np.ndarray, str]:
    """Frame files of a game under one camera, a hand frame between positions.

    Returns which position each frame shows (-1 for a hand frame), the board corners and a1's image corner.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shows, corners = [], None
    for i, board in enumerate(_positions(sans)):
        render = render_board(labels_from_board(board), SEED, size, with_ids=False)
        corners = render.corners
        if i > 0:
            shows.append(-1)
            cv2.imwrite(str(folder / f"{len(shows):04d}.png"), cv2.cvtColor(_hand(render.image, corners, i),
                                                                             cv2.COLOR_RGB2BGR))
        for _ in range(STILL_FRAMES):
            shows.append(i)
            cv2.imwrite(str(folder / f"{len(shows):04d}.png"), cv2.cvtColor(render.image, cv2.COLOR_RGB2BGR))
    a1 = next(a for a in A1_POSITIONS if np.allclose(order_corners(corners, a), corners))
    return shows, corners, a1


def _confident(board: chess.Board, p: float = 0.9) -> np.ndarray:
    probs = np.full((64, 13), (1 - p) / 12)
    probs[np.arange(64), labels_from_board(board)] = p
    return probs


class ScriptedSession(BroadcastSession):
    """A session whose classifier is replaced by the truth of each frame, with chosen frames misread."""

    def __init__(self, *args, shows: list[int], misread: dict[int, chess.Board], **kw):
        super().__init__(*args, **kw)
        self.shows, self.misread, self.positions = shows, misread, _positions()

    def probabilities(self, frame: Frame, board_corners: np.ndarray) -> np.ndarray:
        position = self.positions[max(self.shows[frame.index], 0)]
        return _confident(self.misread.get(frame.index, position))


def _pgn_moves(text: str) -> list[str]:
    game = chess.pgn.read_game(io.StringIO(text))
    board, sans = game.board(), []
    for move in game.mainline_moves():
        sans.append(board.san(move))
        board.push(move)
    return sans


@pytest.fixture(scope="module")
def game_frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    return folder, *render_game_frames(folder)


def test_a_misread_frame_is_outvoted_and_the_pgn_ends_right(game_frames, tmp_path):
    folder, shows, corners, a1 = game_frames
    # the first settled frame after ...Nc6 shows ...Nh6 instead, a legal move that was not played
    wrong = _positions()[3].copy()
    wrong.push_san("Nh6")
    first_after_nc6 = shows.index(4)
    misread = {first_after_nc6 + k: wrong for k in range(STILL_FRAMES)}  # every still frame of it, in fact
    outputs = BroadcastOutputs(tmp_path / "game.pgn", tmp_path / "events.jsonl", chess.Board(), {"White": "A"})
    session = ScriptedSession(Recognizer(model="unused.ckpt"), outputs, chess.Board(), corners=corners, a1=a1,
                              shows=shows, misread=misread)
    moves = session.run(frames_from(str(folder)))
    outputs.close()
    text = (tmp_path / "game.pgn").read_text()
    assert _pgn_moves(text) == SANS and '[White "A"]' in text
    assert moves == _game_moves()
    # two decodes per still period (settled, then confirmed 0.4 s later); the hand frames are never decoded
    assert session.summary.decodes == 2 * (len(SANS) + 1)
    events = [json.loads(e) for e in (tmp_path / "events.jsonl").read_text().splitlines()]
    decodes = [e for e in events if e["event"] == "decode"]
    assert len(decodes) == session.summary.decodes and events[-1]["event"] == "end"
    assert all(shows[e["frame"]] >= 0 for e in decodes)
    # a move reaches the PGN while its position still stands (at the period's confirmation), before the
    # next move. The misreading, seen in both decodes of its period, is published too, then corrected:
    # the move after it waits for the frames that overturn it
    published_at = {ply: min(e["frame"] for e in decodes if e["plies"] >= ply) for ply in range(1, len(SANS))}
    late = [ply for ply, frame in published_at.items() if shows[frame] != ply]
    assert late == [5] and [e["update"] for e in decodes].count("correction") == 1


def _game_moves() -> list[chess.Move]:
    board, moves = chess.Board(), []
    for san in SANS:
        moves.append(board.push_san(san))
    return moves


def test_the_pgn_is_served_on_localhost_and_grows_while_frames_arrive(game_frames, tmp_path):
    folder, shows, corners, a1 = game_frames
    outputs = BroadcastOutputs(tmp_path / "game.pgn", None, chess.Board(), {})
    session = ScriptedSession(Recognizer(model="unused.ckpt"), outputs, chess.Board(), corners=corners, a1=a1,
                              shows=shows, misread={})
    seen = []
    with PgnServer(lambda: outputs.text, 0) as server:
        assert server.url.startswith("http://127.0.0.1:")

        def frames_while_polling():
            for frame in frames_from(str(folder)):
                yield frame
                if frame.index in (len(shows) // 2, len(shows) - 1):
                    with urllib.request.urlopen(server.url, timeout=10) as response:
                        seen.append(response.read().decode())

        session.run(frames_while_polling())
        with urllib.request.urlopen(server.url, timeout=10) as response:
            seen.append(response.read().decode())
    middle, before_end, final = (_pgn_moves(t) for t in seen)
    assert 0 < len(middle) < len(before_end) <= len(SANS)
    assert SANS[:len(middle)] == middle and final == SANS


def test_a_takeback_removes_the_moves_from_the_pgn_and_the_game_goes_on(game_frames, tmp_path):
    """Bc4 Bc5 stand, then both are taken back (an arbiter restores the position) and Bb5 is played."""
    folder, shows, corners, a1 = game_frames
    restored = _positions()[4]
    instead = restored.copy()
    instead.push_san("Bb5")
    script = {i: {7: restored, 8: instead}[shown] for i, shown in enumerate(shows) if shown in (7, 8)}
    outputs = BroadcastOutputs(tmp_path / "game.pgn", tmp_path / "events.jsonl", chess.Board(), {})
    session = ScriptedSession(Recognizer(model="unused.ckpt"), outputs, chess.Board(), corners=corners, a1=a1,
                              shows=shows, misread=script)
    session.run(frames_from(str(folder)))
    outputs.close()
    assert _pgn_moves((tmp_path / "game.pgn").read_text()) == [*SANS[:4], "Bb5"]
    decodes = [json.loads(e) for e in (tmp_path / "events.jsonl").read_text().splitlines() if '"decode"' in e]
    assert max(e["plies"] for e in decodes) == 6  # Bc4 Bc5 were published ...
    assert any(e["taken_back"] == 2 for e in decodes) and session.summary.corrections == 1  # ... and taken back


def test_broadcast_inputs_are_checked_with_one_line_errors(tmp_path, capsys):
    not_video = tmp_path / "clip.mp4"
    not_video.write_text("not a video")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(not_video)], "clip.mp4"),
        ([str(tmp_path / "empty")], "no frame files"),
        ([str(tmp_path / "missing.mp4")], "no such video"),
        ([str(tmp_path / "empty"), "--fen", "8/8/8/8/8/8/8/8 w - - 0 1"], "not a legal position"),
        ([str(tmp_path / "empty"), "--fen", "rubbish"], "not a valid FEN"),
        ([str(tmp_path / "empty"), "--a1", "top-left"], "--a1 needs --corners"),
        ([str(tmp_path / "empty"), "--max-delay", "-1"], "--max-delay must be >= 0"),
    ]
    for argv, shown in cases:
        assert main(["broadcast", *argv, "--pgn", str(tmp_path / "g.pgn")]) == USER_ERROR_EXIT, argv
        err = capsys.readouterr().err.strip()
        assert shown in err and err.count("\n") == 0, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UserError, match=f"--serve {taken.getsockname()[1]}"):
            PgnServer(lambda: "", taken.getsockname()[1])
    with pytest.raises(UserError, match="not a valid FEN"):
        start_board("8/8/8")


def test_a_video_file_is_read_frame_by_frame(game_frames, tmp_path):
    folder, shows, *_ = game_frames
    video = tmp_path / "game.avi"
    first = cv2.imread(str(sorted(folder.iterdir())[0]))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, first.shape[1::-1])
    for file in sorted(folder.iterdir()):
        writer.write(cv2.imread(str(file)))
    writer.release()
    frames = list(frames_from(str(video)))
    assert len(frames) == len(shows)
    assert frames[5].time_s == pytest.approx(1.0) and frames[0].pixels.shape == first.shape


@pytest.mark.slow
def test_broadcast_of_a_rendered_game_with_the_released_model_writes_the_game(tmp_path, capsys):
    """The whole path: frames on disk, the board located and oriented, a real classifier, PGN on disk."""
    from chessrec.inference.loader import RELEASED_MODEL

    folder = tmp_path / "frames"
    render_game_frames(folder, size=640)
    pgn = tmp_path / "game.pgn"
    assert main(["broadcast", str(folder), "--pgn", str(pgn), "--model", str(RELEASED_MODEL),
                 "--event", "Test", "--white", "W", "--black", "B"]) == 0
    assert _pgn_moves(pgn.read_text()) == SANS
    assert f"{len(SANS)} plies" in capsys.readouterr().out
    events = (tmp_path / "game.pgn.jsonl").read_text()
    assert '"event": "located"' in events


@pytest.mark.slow
def test_a_board_located_one_square_off_is_put_right_by_the_start_position(tmp_path, monkeypatch):
    """Locating from x-corners alone can land one square off (the lattice goes on past the board); the
    known start position settles it on the first settled frame, and the game is followed from there."""
    from chessrec.inference.loader import RELEASED_MODEL

    folder = tmp_path / "frames"
    _, corners, _ = render_game_frames(folder, size=640)
    one_file_off = order_corners(shifted_board(corners, files=1, ranks=0), "bottom-left")
    monkeypatch.setattr(Recognizer, "locate", lambda self, pixels, name="image": one_file_off)
    outputs = BroadcastOutputs(tmp_path / "game.pgn", tmp_path / "events.jsonl", chess.Board(), {})
    recognizer = Recognizer(model=RELEASED_MODEL)
    session = BroadcastSession(recognizer, outputs, chess.Board())
    moves = session.run(frames_from(str(folder)))
    outputs.close()
    assert moves == _game_moves() and _pgn_moves((tmp_path / "game.pgn").read_text()) == SANS
    refits = [json.loads(e) for e in (tmp_path / "events.jsonl").read_text().splitlines() if '"refitted"' in e]
    assert len(refits) == 1 and refits[0]["gain"] > 0
    np.testing.assert_allclose(recognizer.lock.corners, corners, atol=1.0)  # the true board, a1 where it is


def test_benchmark_games_are_as_long_as_asked_and_legal():
    """The broadcast stage scores games of exactly ``plies`` plies: one that ends sooner is played again."""
    from chessrec.broadcast.benchmark import play_game

    rng = np.random.default_rng(11006)  # this seed's first game by the policy is mated after 11 plies
    moves = play_game(rng, 40)
    board = chess.Board()
    for move in moves:
        assert move in board.legal_moves
        board.push(move)
    assert len(moves) == 40
    with pytest.raises(ValueError, match="fewer plies"):
        play_game(np.random.default_rng(0), 400, attempts=2)


def test_benchmark_still_frames_carry_fresh_sensor_noise_and_the_same_seed_renders_the_same_game():
    """Still frames of one position differ only by sensor noise of the set strength (sigma 2, zero
    mean), each frame its own; the stage's figures rest on the same seed giving the same frames."""
    from chessrec.broadcast.benchmark import render_game

    game = render_game(11000, 2, 256, still_frames=3, fps=5.0)
    start = [frame.pixels.astype(np.float32) for frame, shows in zip(game.frames, game.shows) if shows == 0]
    assert len(start) == 3
    differences = [start[0] - start[1], start[1] - start[2], start[0] - start[2]]
    for difference in differences:
        assert abs(float(difference.mean())) < 0.1
        assert 2.0 < float(difference.std()) < 3.5  # two independent sigma-2 draws: sqrt(8) = 2.8, less clipping
    again = render_game(11000, 2, 256, still_frames=3, fps=5.0)
    assert again.moves == game.moves
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(game.frames, again.frames))


@pytest.mark.slow
def test_broadcast_scores_are_the_same_with_the_games_shared_among_processes(tmp_path):
    """The stage shares its games among worker processes; every figure but the timings is summed in
    game order, so it must not depend on how many processes followed the games."""
    from chessrec.broadcast.benchmark import score_broadcast
    from chessrec.errors import UserError
    from chessrec.inference.loader import RELEASED_MODEL

    timings = {"delay_p50_s", "delay_max_s", "decode_p50_ms", "frames_per_s"}
    scores = [score_broadcast(RELEASED_MODEL, games=3, plies=3, image_size=640, seed=11, workers=workers,
                              workdir=tmp_path) for workers in (1, 2)]
    assert scores[0]["moves"] == 9 and scores[0]["beam/move_acc"] > 0
    assert {k: v for k, v in scores[0].items() if k not in timings} == {k: v for k, v in scores[1].items()
                                                                         if k not in timings}
    assert all(scores[1][k] > 0 for k in timings)
    with pytest.raises(UserError, match="nope.ckpt"):  # a bad model: one line from the parent, no hung pool
        score_broadcast(tmp_path / "nope.ckpt", games=2, plies=3, image_size=256, seed=11, workers=2)

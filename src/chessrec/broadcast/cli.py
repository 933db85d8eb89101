"""``chessrec broadcast SOURCE``: follow a game from a video, a frame folder or a camera, as PGN."""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

from chessrec.geometry import A1_POSITIONS


def register(subparsers) -> None:
    from chessrec.broadcast.pgn import HEADERS
    from chessrec.inference.loader import DEFAULT_MODEL

    parser = subparsers.add_parser("broadcast", help="follow a game from a camera stream and write it as PGN")
    parser.add_argument("source", help="a video file, a folder of frames (in name order) or a camera index")
    parser.add_argument("--pgn", default="game.pgn", help="PGN file, rewritten as the game goes (default: game.pgn)")
    parser.add_argument("--log", default=None, help="JSON-lines event log (default: the PGN's name + .jsonl)")
    parser.add_argument("--fen", default=None, help="start position as a full FEN (default: the initial position)")
    for header in HEADERS:
        parser.add_argument(f"--{header.lower()}", default=None, help=f"PGN {header} header")
    parser.add_argument("--model", default=None,
                        help=f"model file, .ckpt or .onnx (default: {DEFAULT_MODEL}, else the released model)")
    parser.add_argument("--corners", default=None,
                        help="fixed camera: the board's corners x1,y1,...,x4,y4 (default: locate and track)")
    parser.add_argument("--a1", choices=A1_POSITIONS, default=None, help="with --corners: image corner nearest a1")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder (default 5)")
    parser.add_argument("--beam-width", type=int, default=6, help="histories the game decoder keeps (default 6)")
    parser.add_argument("--max-delay", type=float, default=1.5, metavar="SECONDS",
                        help="publish the best reading of a move this long after it was seen, even if a close "
                             "rival still disagrees (a later correction rewrites the PGN; default 1.5)")
    parser.add_argument("--serve", type=int, default=None, metavar="PORT",
                        help="also serve the current PGN over HTTP at http://HOST:PORT/game.pgn")
    parser.add_argument("--host", default="127.0.0.1", help="address --serve binds to (default: localhost only)")
    parser.set_defaults(func=_broadcast)


def _broadcast(args) -> int:
    from chessrec.broadcast.frames import frames_from
    from chessrec.broadcast.pgn import HEADERS, BroadcastOutputs, start_board
    from chessrec.broadcast.serve import PgnServer
    from chessrec.broadcast.session import BroadcastOptions, BroadcastSession
    from chessrec.decoding import BeamOptions
    from chessrec.errors import UserError
    from chessrec.recognize import Recognizer, parse_corners

    start = start_board(args.fen)  # every user input is checked before the model loads
    corners = parse_corners(args.corners) if args.corners is not None else None
    if args.a1 is not None and corners is None:
        raise UserError("--a1 needs --corners (without them the board is located and oriented)")
    if args.fps is not None and not args.fps > 0:
        raise UserError(f"--fps must be > 0, got {args.fps}")
    if not args.max_delay >= 0:
        raise UserError(f"--max-delay must be >= 0 seconds, got {args.max_delay}")
    options = BroadcastOptions(beam=BeamOptions(beam_width=args.beam_width), max_delay_s=args.max_delay)
    frames = frames_from(args.source, args.fps)
    headers = {h: getattr(args, h.lower()) for h in HEADERS if getattr(args, h.lower()) is not None}
    pgn_path = Path(args.pgn)
    log_path = Path(args.log) if args.log else pgn_path.with_suffix(pgn_path.suffix + ".jsonl")
    outputs = BroadcastOutputs(pgn_path, log_path, start, headers)
    server = PgnServer(lambda: outputs.text, args.serve, args.host) if args.serve is not None else None
    session = BroadcastSession(Recognizer(args.model), outputs, start, options, corners=corners, a1=args.a1)
    t0 = time.perf_counter()
    try:
        with server or contextlib.nullcontext():
            if server is not None:
                print(f"serving the PGN at {server.url}")
            moves = session.run(frames)
    finally:
        outputs.close()
    s = session.summary
    wall = time.perf_counter() - t0
    median = statistics.median(s.decode_ms) if s.decode_ms else float("nan")
    print(f"broadcast: {len(moves)} plies -> {pgn_path} ({s.frames} frames, {s.decodes} settled decodes, "
          f"median decode {median:.0f} ms, {s.frames / wall:.1f} frames/s; events -> {log_path})")
    return 0

"""The broadcast's outputs: a PGN rewritten atomically (valid at every moment) and a JSON-lines log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import chess
import chess.pgn

from chessrec.errors import UserError
from chessrec.fileio import write_atomic

#: the PGN headers ``chessrec broadcast`` takes options for (the Seven Tag Roster, less Result)
HEADERS = ("Event", "Site", "Date", "Round", "White", "Black")


def start_board(fen: str | None) -> chess.Board:
    """The game's start position: a full FEN, or the initial position when None."""
    if fen is None:
        return chess.Board()
    try:
        board = chess.Board(fen)
    except ValueError as exc:
        raise UserError(f"--fen {fen!r} is not a valid FEN: {exc}") from None
    if not board.is_valid():
        raise UserError(f"--fen {fen!r} is not a legal position ({board.status()!r})")
    return board


def game_pgn(start: chess.Board, moves: Sequence[chess.Move], headers: dict[str, str]) -> str:
    """The PGN text of the moves played from ``start``, with the given headers; result ``*`` until it ends."""
    game = chess.pgn.Game()
    for key, value in headers.items():
        game.headers[key] = value
    if start.fen() != chess.STARTING_FEN:
        game.setup(start)
    node = game
    board = start.copy()
    for move in moves:
        node = node.add_variation(move)
        board.push(move)
    game.headers["Result"] = board.result(claim_draw=False) if board.is_game_over() else "*"
    return str(game) + "\n"


class BroadcastOutputs:
    """The PGN file and the event log of one broadcast; ``publish`` rewrites the PGN when moves change."""

    def __init__(self, pgn_path: Path, log_path: Path | None, start: chess.Board, headers: dict[str, str]):
        self.pgn_path, self.start, self.headers = Path(pgn_path), start, headers
        self.published: list[chess.Move] = []
        self.text = game_pgn(start, [], headers)
        write_atomic(self.pgn_path, self.text)
        self.log = Path(log_path).open("a", encoding="utf-8") if log_path is not None else None

    def publish(self, moves: Sequence[chess.Move]) -> str | None:
        """Rewrite the PGN if ``moves`` differ from what is published: 'moves' (extended) or 'correction'."""
        moves = list(moves)
        if moves == self.published:
            return None
        kind = "moves" if moves[:len(self.published)] == self.published else "correction"
        self.published = moves
        self.text = game_pgn(self.start, moves, self.headers)
        write_atomic(self.pgn_path, self.text)
        return kind

    def event(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record, sort_keys=True) + "\n")
            self.log.flush()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

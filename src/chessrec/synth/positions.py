"""Positions to photograph: legal game sequences (one image per move) and random positions.

Labels always come from python-chess boards, never from the renderer, so they are exact.
Games start from a common opening line and continue with a policy that prefers captures,
checks, development and castling but avoids hanging pieces, which keeps the material
realistic (trades happen, blunders are rare) while still varying widely between games.
"""

from __future__ import annotations

import chess
import numpy as np

from chessrec.labels import labels_from_board

#: common opening lines (SAN); a game plays a random prefix of one of them.
OPENING_LINES: tuple[str, ...] = (
    "e4 e5 Nf3 Nc6 Bb5 a6 Ba4 Nf6 O-O Be7 Re1 b5 Bb3 d6 c3 O-O h3 Nb8",  # Ruy Lopez
    "e4 e5 Nf3 Nc6 Bc4 Bc5 c3 Nf6 d3 d6 O-O O-O Re1 a6",  # Italian
    "e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 a6 Be3 e5 Nb3 Be6 f3 Be7",  # Najdorf
    "e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 g6 Be3 Bg7 f3 O-O Qd2 Nc6",  # Dragon
    "e4 c5 Nc3 Nc6 g3 g6 Bg2 Bg7 d3 d6 f4 e6 Nf3 Nge7",  # Closed Sicilian
    "e4 e6 d4 d5 Nc3 Nf6 Bg5 Be7 e5 Nfd7 Bxe7 Qxe7 f4 O-O",  # French
    "e4 c6 d4 d5 Nc3 dxe4 Nxe4 Bf5 Ng3 Bg6 h4 h6 Nf3 Nd7",  # Caro-Kann
    "e4 d5 exd5 Qxd5 Nc3 Qa5 d4 Nf6 Nf3 c6 Bc4 Bf5",  # Scandinavian
    "e4 d6 d4 Nf6 Nc3 g6 f4 Bg7 Nf3 O-O Bd3 Na6",  # Pirc
    "e4 e5 Nf3 Nc6 d4 exd4 Nxd4 Nf6 Nxc6 bxc6 e5 Qe7 Qe2 Nd5",  # Scotch
    "e4 e5 Nf3 Nf6 Nxe5 d6 Nf3 Nxe4 d4 d5 Bd3 Be7 O-O Nc6",  # Petrov
    "e4 e5 f4 exf4 Nf3 g5 h4 g4 Ne5 Nf6 d4 d6",  # King's Gambit
    "d4 d5 c4 e6 Nc3 Nf6 Bg5 Be7 e3 O-O Nf3 h6 Bh4 b6",  # Queen's Gambit Declined
    "d4 d5 c4 dxc4 Nf3 Nf6 e3 e6 Bxc4 c5 O-O a6 Qe2 b5",  # Queen's Gambit Accepted
    "d4 d5 c4 c6 Nf3 Nf6 Nc3 dxc4 a4 Bf5 e3 e6 Bxc4 Bb4",  # Slav
    "d4 Nf6 c4 g6 Nc3 Bg7 e4 d6 Nf3 O-O Be2 e5 O-O Nc6 d5 Ne7",  # King's Indian
    "d4 Nf6 c4 e6 Nc3 Bb4 Qc2 O-O a3 Bxc3+ Qxc3 b6 Bg5 Bb7",  # Nimzo-Indian
    "d4 Nf6 c4 g6 Nc3 d5 cxd5 Nxd5 e4 Nxc3 bxc3 Bg7 Nf3 c5",  # Gruenfeld
    "d4 d5 Bf4 Nf6 e3 e6 Nf3 c5 c3 Nc6 Nbd2 Bd6 Bg3 O-O",  # London
    "d4 f5 g3 Nf6 Bg2 e6 Nf3 Be7 O-O O-O c4 d6",  # Dutch
    "d4 Nf6 c4 e6 g3 d5 Bg2 Be7 Nf3 O-O O-O dxc4 Qc2 a6",  # Catalan
    "c4 e5 Nc3 Nf6 g3 d5 cxd5 Nxd5 Bg2 Nb6 Nf3 Nc6 O-O Be7",  # English
    "Nf3 d5 g3 Nf6 Bg2 e6 O-O Be7 d3 O-O Nbd2 c5",  # Reti
)

_VALUE = {chess.PAWN: 1.0, chess.KNIGHT: 3.0, chess.BISHOP: 3.2, chess.ROOK: 5.0, chess.QUEEN: 9.0,
          chess.KING: 0.0}


def _move_score(board: chess.Board, move: chess.Move) -> float:
    """Heuristic desirability: win material, give check, develop, castle; do not hang pieces."""
    mover = board.piece_type_at(move.from_square)
    score = 0.0
    if board.is_capture(move):
        victim = board.piece_type_at(move.to_square) or chess.PAWN  # en passant
        score += _VALUE[victim]
    if move.promotion:
        score += _VALUE[move.promotion]
    if board.is_castling(move):
        score += 1.5
    if mover in (chess.KNIGHT, chess.BISHOP) and chess.square_rank(move.from_square) in (0, 7):
        score += 0.6
    board.push(move)
    if board.is_checkmate():
        score += 100.0
    elif board.is_check():
        score += 0.4
    to = move.to_square
    if board.is_attacked_by(board.turn, to):
        moved_value = _VALUE[move.promotion or mover]
        defended = board.is_attacked_by(not board.turn, to)
        score -= moved_value * (0.4 if defended else 0.9)
    board.pop()
    return score


def policy_move(board: chess.Board, rng: np.random.Generator, temperature: float = 0.7) -> chess.Move:
    """A legal move drawn from a softmax over :func:`_move_score` (higher temperature: more random)."""
    moves = list(board.legal_moves)
    scores = np.array([_move_score(board, m) for m in moves])
    logits = (scores - scores.max()) / max(temperature, 1e-6)
    p = np.exp(logits)
    return moves[int(rng.choice(len(moves), p=p / p.sum()))]


def _opening(rng: np.random.Generator) -> chess.Board:
    board = chess.Board()
    line = OPENING_LINES[int(rng.integers(len(OPENING_LINES)))].split()
    for san in line[: int(rng.integers(2, len(line) + 1))]:
        board.push_san(san)
    return board


def game_positions(rng: np.random.Generator, n_positions: int, max_skip: int = 40) -> list[np.ndarray]:
    """Consecutive positions of one game, one after each move (fewer if the game ends).

    The first image is taken after a random number of policy moves past the opening, so a
    data set mixes opening, middlegame and endgame material while each game stays a move
    sequence (which continuity decoding relies on).
    """
    board = _opening(rng)
    for _ in range(int(rng.integers(0, max_skip + 1))):
        if board.is_game_over():
            break
        board.push(policy_move(board, rng))
    positions = [labels_from_board(board)]
    while len(positions) < n_positions and not board.is_game_over():
        board.push(policy_move(board, rng))
        positions.append(labels_from_board(board))
    return positions


def random_position(rng: np.random.Generator) -> np.ndarray:
    """A random legal middlegame or endgame position.

    Half come from fast, noisy play (realistic structures), half from placing a random
    material set on random squares and keeping only valid boards (layouts games rarely reach).
    """
    if rng.random() < 0.5:
        board = _opening(rng)
        for _ in range(int(rng.integers(10, 90))):
            if board.is_game_over():
                break
            board.push(policy_move(board, rng, temperature=2.0))
        return labels_from_board(board)
    return labels_from_board(_placed_position(rng))


def _placed_position(rng: np.random.Generator) -> chess.Board:
    pool = [chess.QUEEN] + [chess.ROOK] * 2 + [chess.BISHOP] * 2 + [chess.KNIGHT] * 2 + [chess.PAWN] * 8
    while True:
        board = chess.Board.empty()
        squares = [int(s) for s in rng.permutation(64)]
        board.set_piece_at(squares.pop(), chess.Piece(chess.KING, chess.WHITE))
        board.set_piece_at(squares.pop(), chess.Piece(chess.KING, chess.BLACK))
        for color in (chess.WHITE, chess.BLACK):
            keep = rng.random(len(pool)) < rng.uniform(0.15, 0.8)
            for piece_type in np.asarray(pool)[keep]:
                square = squares.pop()
                if piece_type == chess.PAWN and chess.square_rank(square) in (0, 7):
                    continue
                board.set_piece_at(square, chess.Piece(int(piece_type), color))
        board.turn = bool(rng.random() < 0.5)
        if board.is_valid():
            return board

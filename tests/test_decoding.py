"""Decoders on crafted probability matrices: what chess knowledge must fix, and what it must leave alone."""

from __future__ import annotations

import itertools

import chess
import numpy as np
import pytest

from chessrec.decoding import (
    DECODER_NAMES,
    DecodeOptions,
    board_log_prob,
    board_score,
    decode,
    decode_sequence,
    is_valid_position,
    k_best_boards,
    log_probs_of,
    moves_between,
)
from chessrec.decoding.beam import BeamOptions, GameBeam
from chessrec.errors import UserError
from chessrec.labels import EMPTY, fen_from_labels, labels_from_fen

START = chess.STARTING_BOARD_FEN
WK, BK, WP, BP, WN, WQ = 5, 11, 0, 6, 2, 4
WR, WB, BB, BQ = 1, 3, 9, 10


def confident(fen: str, p: float = 0.97) -> np.ndarray:
    """Probabilities that put ``p`` on the FEN's class of every square, the rest spread evenly."""
    labels = labels_from_fen(fen)
    probs = np.full((64, 13), (1 - p) / 12)
    probs[np.arange(64), labels] = p
    return probs


def set_square(probs: np.ndarray, square: str, weights: dict[int, float]) -> np.ndarray:
    """Replace one square's distribution by ``weights`` (class id -> probability), the rest spread evenly."""
    row = np.full(13, (1 - sum(weights.values())) / (13 - len(weights)))
    for cls, w in weights.items():
        row[cls] = w
    probs[chess.parse_square(square)] = row
    return probs


#: light squares a1..h8, from python-chess's own bitboard
LIGHT = np.array([bool(chess.BB_LIGHT_SQUARES & chess.BB_SQUARES[sq]) for sq in chess.SQUARES])


def side_promotions(labels: np.ndarray, offset: int) -> int:
    """One side's pieces beyond its initial set, bishops counted per square colour."""
    counts = np.bincount(labels, minlength=13)[offset:offset + 6]
    bishops = labels == offset + 3
    return (max(0, counts[4] - 1) + max(0, counts[1] - 2) + max(0, counts[2] - 2)
            + max(0, np.count_nonzero(bishops & LIGHT) - 1) + max(0, np.count_nonzero(bishops & ~LIGHT) - 1))


def promotions(labels: np.ndarray) -> int:
    return side_promotions(labels, 0) + side_promotions(labels, 6)


def count_rules_hold(labels: np.ndarray) -> bool:
    """The piece-count rules, checked independently of the decoder's formulation."""
    counts = np.bincount(labels, minlength=13)
    for offset in (0, 6):
        pawns, kings = counts[offset], counts[offset + 5]
        if kings != 1 or pawns > 8 or side_promotions(labels, offset) > 8 - pawns:
            return False
    back_ranks = np.r_[labels[:8], labels[56:]]
    return not np.isin(back_ranks, [WP, BP]).any()


def test_constrained_decoder_keeps_one_king():
    probs = set_square(confident(START), "e4", {WK: 0.6, EMPTY: 0.4})  # a second, likelier-than-not white king
    assert decode("argmax", probs).labels.tolist().count(WK) == 2
    for name in ("greedy", "constrained", "topk_legal"):
        decoded = decode(name, probs)
        assert fen_from_labels(decoded.labels) == START, name
        assert decoded.valid


def test_constrained_decoder_keeps_the_more_probable_king():
    probs = set_square(confident(START), "e1", {WK: 0.5, EMPTY: 0.5})
    probs = set_square(probs, "e4", {WK: 0.9, EMPTY: 0.1})
    labels = decode("constrained", probs).labels
    assert labels[chess.E4] == WK and labels[chess.E1] == EMPTY


def test_pawn_most_likely_on_back_rank_is_rejected():
    fen = "4k3/8/8/8/8/8/8/4K2N"
    probs = set_square(confident(fen), "h1", {WP: 0.7, WN: 0.3})
    assert decode("argmax", probs).labels[chess.H1] == WP
    for name in ("greedy", "constrained", "topk_legal"):
        assert decode(name, probs).labels[chess.H1] == WN, name
    assert decode("constrained", probs, DecodeOptions(strict=False)).labels[chess.H1] == WN


def test_promoted_pieces_only_as_far_as_missing_pawns_allow():
    probs = set_square(confident(START), "e4", {WQ: 0.8, EMPTY: 0.2})  # a second queen with all 8 pawns on board
    labels = decode("constrained", probs).labels
    assert count_rules_hold(labels)
    assert np.count_nonzero(labels == WQ) == 1
    # with a pawn missing the second queen is allowed, when the classifier's word outweighs the charge
    probs = set_square(probs, "a2", {EMPTY: 0.97})
    assert np.count_nonzero(decode("constrained", probs, DecodeOptions(promotion_cost=0.0)).labels == WQ) == 2
    assert np.count_nonzero(decode("constrained", probs).labels == WQ) == 1  # 0.8 / 0.2 is under e^4
    probs = set_square(probs, "e4", {WQ: 0.999, EMPTY: 0.001})
    assert np.count_nonzero(decode("constrained", probs).labels == WQ) == 2


def test_a_sides_bishops_keep_their_square_colours():
    # the dark-squared bishop has left c1 and all 8 pawns stand: a bishop read on d3 (light, beside
    # the light-squared one on f1) would be a promotion no missing pawn pays for, even uncharged
    fen = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RN1QKBNR"
    probs = set_square(confident(fen), "d3", {WB: 0.6, EMPTY: 0.4})
    assert decode("argmax", probs).labels[chess.D3] == WB
    free = DecodeOptions(promotion_cost=0.0)
    for name in ("constrained", "topk_legal"):
        labels = decode(name, probs, free).labels
        assert labels[chess.D3] == EMPTY and count_rules_hold(labels), name
    # on e3 (dark) the same reading is the bishop that left c1
    moved = set_square(confident(fen), "e3", {WB: 0.6, EMPTY: 0.4})
    assert decode("constrained", moved, free).labels[chess.E3] == WB
    assert decode("constrained", probs, DecodeOptions(strict=False)).labels[chess.D3] == WB


def test_a_promotion_is_read_only_where_the_classifier_outweighs_its_charge():
    # a pawn is missing, so a second white bishop on a light square is allowed, at the charge
    fen = "rnbqkbnr/pppppppp/8/8/8/8/PPPP1PPP/RNBQKBNR"
    probs = set_square(confident(fen), "e2", {WB: 0.6, WP: 0.4})
    assert decode("constrained", probs, DecodeOptions(promotion_cost=0.0)).labels[chess.E2] == WB
    for name in ("constrained", "topk_legal"):  # log(0.6 / 0.4) is far under 4 nats
        assert decode(name, probs).labels[chess.E2] == WP, name
    sure = set_square(confident(fen), "e2", {WB: 0.995, WP: 0.004})  # log(0.995 / 0.004) is over 4 nats
    assert decode("constrained", sure).labels[chess.E2] == WB


def test_topk_legal_prefers_valid_improbable_fix_over_invalid_probable_board():
    # kings side by side: every count rule holds, but no position has adjacent kings
    fen = "8/8/8/3kK3/8/8/8/8"
    probs = set_square(confident(fen, p=0.999), "e5", {WK: 0.6, EMPTY: 0.3})
    probs = set_square(probs, "g5", {WK: 0.3, EMPTY: 0.7})  # the less probable but valid home of the white king
    constrained = decode("constrained", probs)
    assert fen_from_labels(constrained.labels) == fen and not constrained.valid
    fixed = decode("topk_legal", probs)
    assert fixed.valid and fixed.labels[chess.G5] == WK and fixed.labels[chess.E5] == EMPTY
    assert fixed.log_prob < constrained.log_prob


def test_topk_legal_returns_best_board_flagged_invalid_when_none_of_k_is_legal():
    probs = confident("8/8/8/3kK3/8/8/8/8", p=0.999)
    decoded = decode("topk_legal", probs, DecodeOptions(topk=2))
    assert not decoded.valid and fen_from_labels(decoded.labels) == "8/8/8/3kK3/8/8/8/8"


def test_non_strict_mode_lets_study_positions_without_kings_through():
    study = "8/8/3q4/8/8/2QQ4/8/8"
    probs = confident(study)
    assert fen_from_labels(decode("constrained", probs, DecodeOptions(strict=False)).labels) == study
    assert fen_from_labels(decode("topk_legal", probs, DecodeOptions(strict=False)).labels) == study
    forced = decode("constrained", probs).labels  # strict mode must invent both kings
    assert count_rules_hold(forced)


def _uncertain_board(rng: np.random.Generator, fen: str, squares: list[str], classes: list[int]) -> np.ndarray:
    """A confident position with a few squares spread over a few classes: small enough to brute-force."""
    probs = confident(fen, p=0.995)
    for square in squares:
        weights = rng.dirichlet(np.ones(len(classes)) * 0.7) * 0.99
        probs = set_square(probs, square, dict(zip(classes, weights)))
    return probs


#: (position, its uncertain squares, the classes they spread over): kings and queens on a sparse board;
#: all but one pawn standing, so the cap on promotions binds; a pawn or a bishop on either colour;
#: black bishops on one colour
BRUTE_FORCE_CASES = [
    ("4k3/8/8/8/8/8/4P3/4K3", ["e1", "e8", "d4", "h8", "c3", "f3"], [WK, BK, WQ, WB, EMPTY]),
    ("4k3/pppppppp/8/8/8/8/PPPPPPP1/2B1KB2", ["h2", "d3", "e4", "c1", "g5", "b8"], [WP, WB, WQ, WN, EMPTY]),
    ("4k3/pppppppp/8/8/8/8/PPPPPP2/4K3", ["g2", "h2", "d3", "e4", "c6", "f5"], [WP, WB, WQ, EMPTY, BB]),
    ("r3k3/1ppppppp/8/8/8/8/PPPPPPP1/4K3", ["h2", "a7", "a1", "d4", "e5", "b6"], [WP, BP, WB, BB, EMPTY]),
]


def _brute_force(log_probs: np.ndarray, squares: list[str], classes: list[int], base: np.ndarray,
                 promotion_cost: float):
    boards = []
    for combo in itertools.product(classes, repeat=len(squares)):
        labels = base.copy()
        labels[[chess.parse_square(s) for s in squares]] = combo
        if count_rules_hold(labels):
            boards.append((board_log_prob(log_probs, labels) - promotion_cost * promotions(labels), labels))
    return sorted(boards, key=lambda item: -item[0])


@pytest.mark.parametrize("promotion_cost", [0.0, 0.7, 4.0])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", range(len(BRUTE_FORCE_CASES)))
def test_constrained_and_k_best_match_brute_force(case, seed, promotion_cost):
    fen, squares, classes = BRUTE_FORCE_CASES[case]
    rng = np.random.default_rng(100 * case + seed)
    probs = _uncertain_board(rng, fen, squares, classes)
    log_probs = log_probs_of(probs)
    base = log_probs.argmax(axis=1)
    truth = _brute_force(log_probs, squares, classes, base, promotion_cost)
    options = DecodeOptions(promotion_cost=promotion_cost)
    decoded = decode("constrained", probs, options)
    assert board_score(log_probs, decoded.labels, promotion_cost) == pytest.approx(truth[0][0])
    assert decoded.log_prob == pytest.approx(board_log_prob(log_probs, decoded.labels))
    best = list(k_best_boards(log_probs, 10, promotion_cost=promotion_cost))
    assert all(count_rules_hold(labels) for labels in best)
    scores = [board_score(log_probs, labels, promotion_cost) for labels in best]
    assert scores == pytest.approx([score for score, _ in truth[:10]])
    assert len({labels.tobytes() for labels in best}) == len(best)


def _game(sans: list[str]) -> list[np.ndarray]:
    board = chess.Board()
    positions = [labels_from_fen(board.board_fen())]
    for san in sans:
        board.push_san(san)
        positions.append(labels_from_fen(board.board_fen()))
    return positions


def _blurred(labels: np.ndarray, p: float = 0.6) -> np.ndarray:
    probs = confident(fen_from_labels(labels), p)
    return probs


def test_continuity_recovers_both_moves_across_a_missed_frame():
    positions = _game(["e4", "e5", "Nf3", "Nc6", "Bb5"])
    frames = [positions[i] for i in (0, 1, 2, 4, 5)]  # the frame after Nf3 was missed
    probs = np.stack([_blurred(labels) for labels in frames])
    # the frame after Nc6 is misread on d7; continuity must still follow the game
    probs[3] = set_square(probs[3], "d7", {EMPTY: 0.55, BP: 0.45})
    decoded = decode_sequence("continuity", probs)
    assert [d.moves for d in decoded] == [(), ("e4",), ("e5",), ("Nf3", "Nc6"), ("Bb5",)]
    assert all(np.array_equal(d.labels, labels) for d, labels in zip(decoded, frames))
    independent = decode_sequence("topk_legal", probs)
    assert not np.array_equal(independent[3].labels, frames[3])


def test_continuity_restarts_when_the_chain_breaks():
    positions = _game(["e4", "e5"])
    unrelated = labels_from_fen("r3k2r/8/8/8/8/8/8/R3K2R")
    frames = [positions[0], positions[1], unrelated, unrelated]
    decoded = decode_sequence("continuity", np.stack([_blurred(f, 0.9) for f in frames]))
    assert np.array_equal(decoded[2].labels, unrelated) and decoded[2].moves == ()
    assert decoded[3].moves == () and np.array_equal(decoded[3].labels, unrelated)


def _misread_as_another_legal_move():
    """A game whose 4th frame shows a legal move that was not played (d6 read where d5 stands)."""
    sans = ["e4", "e5", "Nf3", "d6", "Bc4", "Be7", "O-O", "Nf6"]
    positions = _game(sans)
    probs = np.stack([_blurred(labels, 0.9) for labels in positions])
    probs[4] = confident(chess.Board("rnbqkbnr/ppp2ppp/8/3pp3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 0 3").board_fen(), 0.95)
    return sans, positions, probs


def test_beam_lets_later_frames_overturn_a_misread_legal_move():
    sans, positions, probs = _misread_as_another_legal_move()
    continuity_reads = decode_sequence("continuity", probs)
    beam_reads = decode_sequence("beam", probs)
    right = lambda reads: sum(np.array_equal(d.labels, p) for d, p in zip(reads, positions))  # noqa: E731
    assert right(beam_reads) == len(positions)
    assert right(continuity_reads) < len(positions)  # it took d5, then had to break the chain
    assert [m for d in beam_reads for m in d.moves] == sans


def test_game_decoders_follow_a_promotion_that_a_frame_alone_is_charged_out_of():
    board = chess.Board("8/P3k3/8/8/8/8/8/3QK3 w - - 0 1")
    sans, positions = ["a8=Q", "Kf6", "Qab8", "Kg6"], [labels_from_fen(board.board_fen())]
    for san in sans:
        board.push_san(san)
        positions.append(labels_from_fen(board.board_fen()))
    probs = np.stack([confident(fen_from_labels(labels), 0.6) for labels in positions])
    # on its own, a second queen read at 0.6 does not outweigh the charge: the free rook slot takes it
    assert fen_from_labels(decode("constrained", probs[1]).labels) == "R7/4k3/8/8/8/8/8/3QK3"
    for name in ("continuity", "beam"):
        reads = decode_sequence(name, probs)
        assert all(np.array_equal(d.labels, p) for d, p in zip(reads, positions)), name
        assert [m for d in reads for m in d.moves] == ["a8=Q", "Kf6", "Qb8", "Kg6"], name


def test_streaming_beam_from_the_start_position_commits_the_game_and_skips_a_garbage_frame():
    sans, positions, probs = _misread_as_another_legal_move()
    garbage = np.full((64, 13), 1 / 13)
    garbage[:, WQ] = 0.5  # queens everywhere: no continuation explains it
    frames = [*probs[1:5], garbage / garbage.sum(axis=1, keepdims=True), *probs[5:]]
    game = GameBeam(start=chess.Board())
    committed_lengths = []
    for frame in frames:
        game.push(log_probs_of(frame))
        committed_lengths.append(len(game.committed_moves()))
    replay = chess.Board()
    assert [replay.san_and_push(m) for m in game.best.moves()] == sans
    assert committed_lengths == sorted(committed_lengths)  # the published game only grows
    assert committed_lengths[-1] >= len(sans) - 1  # the last move may still wait for its confirmation
    assert committed_lengths[3] < 4  # the misread d5 is never published
    with pytest.raises(UserError, match="beam_width"):
        BeamOptions(beam_width=0)


def test_moves_between_finds_castling_and_missed_frames():
    before = labels_from_fen("r3k2r/8/8/8/8/8/8/R3K2R")
    after = labels_from_fen("r3k2r/8/8/8/8/8/8/R4RK1")
    assert moves_between(before, after) == ("O-O",)
    assert moves_between(before, labels_from_fen("2kr3r/8/8/8/8/8/8/R4RK1")) == ("O-O", "O-O-O")
    assert moves_between(before, labels_from_fen(START)) is None


def test_every_decoder_reads_a_clear_board_unchanged():
    probs = confident(START)
    for name in DECODER_NAMES:
        decoded = decode(name, probs)
        assert fen_from_labels(decoded.labels) == START and decoded.valid, name


def test_validity_accepts_either_side_to_move():
    assert is_valid_position(labels_from_fen("4k3/8/8/8/8/8/8/4K2R"))
    assert is_valid_position(labels_from_fen("4k2R/8/8/8/8/8/8/4K3"))  # black in check: White just moved
    assert not is_valid_position(labels_from_fen("4k2R/8/8/8/8/8/8/r3K3"))  # both kings in check


def test_unknown_decoder_and_bad_options_are_user_errors():
    with pytest.raises(UserError, match="unknown decoder"):
        decode("viterbi", confident(START))
    with pytest.raises(UserError, match="topk"):
        DecodeOptions(topk=0)
    with pytest.raises(UserError, match="promotion-cost"):
        DecodeOptions(promotion_cost=-1.0)
    with pytest.raises(UserError, match="shape"):
        decode("argmax", np.ones((63, 13)))


def test_streaming_beam_follows_a_fixed_camera_that_misreads_the_same_squares_in_every_frame():
    """A fixed camera misreads the same squares frame after frame, and a move can add more: the game
    still fits each frame far better than any other line, so it must be followed, not declared lost."""
    sans = ["e4", "e5", "Nf3", "Nc6", "Bc4", "Bc5", "O-O", "Nf6", "d3", "d6"]
    frames = []
    for ply, labels in enumerate(_game(sans)):
        probs = confident(fen_from_labels(labels), 0.9)
        # pieces that stay put all game read as each other (~5.4 nats a square, 21.7 in all: beyond
        # skip_penalty), with the piece counts still legal, so the frame's own best reading keeps them
        misread = {"a1": WN, "b1": WR, "c1": WQ, "d1": WB}
        if ply >= 5:  # from ...Bc5 on, four more squares read wrong
            misread |= {"c8": BQ, "d8": BB, "a2": BP, "a7": WP}
        for square, cls in misread.items():
            set_square(probs, square, {cls: 0.95})
        frames += [probs, probs]  # settled, then confirmed: the same misreadings both times
    game = GameBeam(start=chess.Board())
    for probs in frames[2:]:
        game.push(log_probs_of(probs))
    replay = chess.Board()
    assert [replay.san_and_push(m) for m in game.best.moves()] == sans
    assert not any(step.restarted for step in game.best.steps())
    assert len(game.committed_moves()) == len(sans)  # the last move too: its confirmation has been read


def test_streaming_beam_follows_a_takeback_and_the_moves_played_instead():
    """4. Bc4 Nf6 stand for two still periods, both are taken back (an arbiter restores the position
    before them), and 4. Bb5 a6 are played instead: the game must drop the two moves, not break."""
    before = _game(["e4", "e5", "Nf3", "Nc6"])
    shown = [*before[1:], *_game(["e4", "e5", "Nf3", "Nc6", "Bc4", "Nf6"])[-2:], before[-1],
             *_game(["e4", "e5", "Nf3", "Nc6", "Bb5", "a6"])[-2:]]

    def follow(beam: BeamOptions) -> tuple[GameBeam, list[int]]:
        game, committed = GameBeam(beam=beam, start=chess.Board()), []
        for labels in shown:
            for _ in range(2):  # settled, then confirmed
                game.push(log_probs_of(confident(fen_from_labels(labels), 0.9)))
                committed.append(len(game.committed_moves()))
        return game, committed

    game, committed = follow(BeamOptions())
    assert chess.Board().variation_san(game.best.moves()) == "1. e4 e5 2. Nf3 Nc6 3. Bb5 a6"
    assert [step.taken_back for step in game.best.steps()].count(2) == 1
    assert max(committed[:12]) == 6 and committed[13] == 4  # Bc4 Nf6 were committed, then taken back
    without, _ = follow(BeamOptions(takeback_penalty=None))
    assert without.best.moves()[:6] != game.best.moves()  # without takebacks the game is lost


def test_game_tracker_searches_each_position_once_and_decides_as_a_fresh_search_would(monkeypatch):
    """A video shows each position for several frames: the tracker reuses its search of the positions
    reachable from the same roots, and every decision equals one made with a fresh search per frame."""
    import chessrec.decoding.game as game

    positions = _game(["e4", "e5", "Nf3", "Nc6"])
    frames = [labels for labels in positions for _ in range(3)]  # each position still for three frames
    probs = np.stack([_blurred(labels, 0.7) for labels in frames])
    probs[7] = set_square(probs[7], "f3", {EMPTY: 0.5, WN: 0.5})  # a doubtful frame mid-stream
    searches = []
    real_reachable = game.reachable

    def counted(roots, max_plies):
        searches.append(len(roots))
        return real_reachable(roots, max_plies)

    monkeypatch.setattr(game, "reachable", counted)
    cached = game.GameTracker()
    cached_frames = [cached.push(p) for p in probs]
    searched = len(searches)
    fresh = game.GameTracker()
    fresh._candidates = lambda: real_reachable(fresh.roots, fresh.options.max_plies)  # no reuse
    fresh_frames = [fresh.push(p) for p in probs]
    assert [(f.decoded.labels.tolist(), f.moves, f.restarted) for f in cached_frames] == \
        [(f.decoded.labels.tolist(), f.moves, f.restarted) for f in fresh_frames]
    assert [f.moves for f in cached_frames if f.moves] == [(chess.Move.from_uci(u),) for u in ("e2e4", "e7e5", "g1f3", "b8c6")]
    # one search per position followed (the start, then after each of the four moves), not one per frame
    assert searched == 5 and len(frames) == 15

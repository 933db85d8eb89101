"""Decoding class probabilities into positions, with and without chess knowledge.

The classifier scores every square on its own; a position is more than 64 independent guesses.
Each decoder reads the same log-probabilities and differs only in how much chess it knows: the
decoders of one board live in :mod:`chessrec.decoding.board`, the decoding of a game's frames
(``continuity``, and its streaming form :class:`GameTracker`) in :mod:`chessrec.decoding.game`,
and the search for a game's most probable history (``beam``, :class:`GameBeam`) in
:mod:`chessrec.decoding.beam`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chessrec import registry
from chessrec.decoding.board import (
    LOG_FLOOR,
    PROMOTION_COST,
    Decoded,
    DecodeOptions,
    argmax,
    board_log_prob,
    board_score,
    constrained,
    decode_score,
    greedy,
    is_valid_position,
    k_best_boards,
    log_probs_of,
    promoted_pieces,
    topk_legal,
)
from chessrec.decoding.beam import BeamOptions, GameBeam, beam
from chessrec.decoding.game import (
    GameTracker,
    TrackedFrame,
    continuity,
    follow_moves,
    moves_between,
    reachable,
    roots_of,
)
from chessrec.errors import UserError

__all__ = [
    "DECODERS", "DECODER_NAMES", "BeamOptions", "GameBeam", "LOG_FLOOR", "PROMOTION_COST", "SEQUENCE_DECODERS", "Decoded",
    "DecodeOptions", "GameTracker", "TrackedFrame", "board_log_prob", "board_score", "check_decoder", "decode",
    "decode_score", "decode_sequence", "follow_moves", "is_valid_position", "k_best_boards", "log_probs_of",
    "moves_between", "promoted_pieces", "reachable", "roots_of",
]

# -------------------------------------------------------------------------------------------- registry
BoardDecoder = Callable[[np.ndarray, DecodeOptions], Decoded]
#: decoders of single boards, by name
DECODERS: dict[str, BoardDecoder] = dict(zip(registry.BOARD_DECODERS, (argmax, greedy, constrained, topk_legal),
                                             strict=True))
#: decoders of a game's frames in order, by name
SEQUENCE_DECODERS: dict[str, Callable[[np.ndarray, DecodeOptions], list[Decoded]]] = dict(
    zip(registry.SEQUENCE_DECODERS, (continuity, beam), strict=True))
DECODER_NAMES: tuple[str, ...] = registry.DECODERS


def check_decoder(name: str) -> str:
    if name not in DECODER_NAMES:
        raise UserError(f"unknown decoder {name!r}; choose one of {', '.join(DECODER_NAMES)}")
    return name


def decode(name: str, probs: np.ndarray, options: DecodeOptions = DecodeOptions()) -> Decoded:
    """Decode one board's (64, 13) class probabilities; ``continuity`` on a single frame decodes it on its own."""
    return decode_sequence(name, np.asarray(probs)[None], options)[0]


def decode_sequence(name: str, probs: np.ndarray, options: DecodeOptions = DecodeOptions()) -> list[Decoded]:
    """Decode (N, 64, 13) probabilities of frames in game order (order matters only for ``continuity``)."""
    log_probs = log_probs_of(probs)
    if check_decoder(name) in SEQUENCE_DECODERS:
        return SEQUENCE_DECODERS[name](log_probs, options)
    return [DECODERS[name](lp, options) for lp in log_probs]

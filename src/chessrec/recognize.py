"""Reading the position off photos: the Python API a broadcast system embeds, and ``chessrec predict``.

A photo goes through the same steps as the pipeline, each a public method of :class:`Recognizer`:
``locate`` the board's corners (:func:`chessrec.localisation.locate_board`), ``orient`` it (which
image corner is a1: :func:`chessrec.orientation.decide_orientation`, from the checker pattern,
which side each colour stands on and which rotation decodes most plausibly), ``crop`` the squares
with the model's own crop specs, ``classify`` them and ``decode`` the position.

A camera over a board sees the same board frame after frame, so a recognizer *locks* the corners
and a1 it found and reuses them, re-checking each new frame cheaply (the checker pattern is still
there, in the same phase) instead of searching again; it re-locates when the check fails.
:func:`recognize` is the one-call convenience for a single photo.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import chess
import numpy as np

from chessrec.decoding import (
    PROMOTION_COST,
    Decoded,
    DecodeOptions,
    board_log_prob,
    check_decoder,
    constrained,
    decode,
    decode_score,
    log_probs_of,
)
from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, a1_corner_of, order_corners, shifted_board, validate_corners
from chessrec.imageio import check_rgb
from chessrec.inference.loader import DEFAULT_MODEL, load_model
from chessrec.inference.model import SquareModel, cut_crops
from chessrec.inference.views import with_views
from chessrec.labels import CLASS_SYMBOLS, CORNER_NAMES, EMPTY, fen_from_labels

#: used when neither the caller nor params.yaml (``evaluate.best_decoder``) names one
DEFAULT_DECODER = "constrained"
#: a locked board passes the re-check while its checker log-odds keep the locked sign and at least this
#: share of the locked strength (pieces that move change a few squares' brightness, a moved board all)
LOCK_RECHECK_SHARE = 0.5


@dataclass(frozen=True)
class Recognition:
    """A recognised position: FEN piece placement, per-square labels and confidence, and how it was read.

    ``corners`` are in :data:`chessrec.labels.CORNER_NAMES` order (a8, h8, h1, a1 corners);
    ``a1`` names the image corner nearest a1; ``probabilities`` are the classifier's (64, 13)
    class probabilities the decoder read; ``from_lock`` says the board lock supplied corners and
    a1; ``timings_ms`` splits the latency by step.
    """

    fen: str
    labels: np.ndarray
    confidence: np.ndarray
    valid: bool
    corners: np.ndarray
    a1: str
    decoder: str
    probabilities: np.ndarray
    orientation_scores: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    from_lock: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "fen": self.fen,
            "valid": self.valid,
            "decoder": self.decoder,
            "a1": self.a1,
            "from_lock": self.from_lock,
            "corners": {name: [round(float(x), 2), round(float(y), 2)] for name, (x, y) in zip(CORNER_NAMES, self.corners)},
            "squares": {
                chess.square_name(sq): {"piece": CLASS_SYMBOLS[int(c)], "confidence": round(float(p), 4)}
                for sq, (c, p) in enumerate(zip(self.labels, self.confidence))
            },
            "orientation_scores": {k: round(v, 3) for k, v in self.orientation_scores.items()},
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class BoardLock:
    """Where the board lies in a fixed camera's view: its corners (a8, h8, h1, a1 order), a1, and proof.

    ``checker`` is the checker log-odds of the image-ordered board when locked
    (:func:`chessrec.orientation.checker_log_odds`): its sign is the pattern's phase, its size the
    evidence; ``image_shape`` the frame size it holds for.
    """

    corners: np.ndarray
    a1: str
    image_shape: tuple[int, int]
    checker: float


#: a photo file is decoded at a reduced JPEG scale while its long side stays at least this (see
#: :func:`chessrec.imageio.read_rgb_reduced`): a 5760 px phone photo is read at 1440 px
READ_LONG_SIDE = 1440


def read_image(image, name: str | None = None) -> tuple[np.ndarray, int]:
    """(H x W x 3 uint8 RGB, factor) from a path (EXIF orientation applied, large JPEGs decoded reduced
    by ``factor``) or an array (factor 1)."""
    if isinstance(image, (str, Path)):
        from chessrec.imageio import read_rgb_reduced

        return read_rgb_reduced(image, READ_LONG_SIDE)
    return check_rgb(image, name or "image"), 1


def _image_name(image) -> str:
    return str(image) if isinstance(image, (str, Path)) else "image"


def _checker(pixels: np.ndarray, image_corners: np.ndarray) -> float:
    from chessrec.orientation import cell_brightness, checker_log_odds

    return checker_log_odds(cell_brightness(pixels, order_corners(image_corners, "bottom-left")))


class Recognizer:
    """Photo -> position, step by step, keeping a board lock across the frames of one camera.

    ``model``: a :class:`chessrec.inference.SquareModel` or a model file (default: the pipeline's).
    ``lock``: whether :meth:`recognize` locks the board it finds and reuses it on later frames.
    ``mirror_average``: read every crop also mirrored and average the two readings
    (:mod:`chessrec.inference.views`): more accurate, twice the model time.
    """

    def __init__(self, model: SquareModel | Path | str | None = None, decoder: str | None = None,
                 strict: bool = True, topk: int = 32, lock: bool = True, mirror_average: bool = True,
                 promotion_cost: float = PROMOTION_COST):
        self.decoder = check_decoder(decoder or DEFAULT_DECODER)
        self.options = DecodeOptions(strict=strict, topk=topk, promotion_cost=promotion_cost)
        self._model_source = model
        self._model: SquareModel | None = None
        self.keep_lock = lock
        self.mirror_average = mirror_average
        self.lock: BoardLock | None = None

    @property
    def model(self) -> SquareModel:
        """The square model, loaded on first use (so the user's input is checked before a slow load)."""
        if self._model is None:
            self._model = with_views(load_model(self._model_source), self.mirror_average)
        return self._model

    # ---------------------------------------------------------------------------------- the steps
    def locate(self, pixels: np.ndarray, name: str = "image") -> np.ndarray:
        """The board's outer corners in image order (TL, TR, BR, BL of the image)."""
        from chessrec.localisation import locate_board

        return locate_board(pixels, name=name)

    def crop(self, pixels: np.ndarray, board_corners: np.ndarray) -> dict[str, np.ndarray]:
        """The 64 crops per crop spec of the model, for corners in a8, h8, h1, a1 order."""
        return cut_crops(self.model, pixels, board_corners)

    def classify(self, crops: dict[str, np.ndarray]) -> np.ndarray:
        """(64, 13) class probabilities of one board's crops."""
        return self.model.predict_proba({name: c[None] for name, c in crops.items()})[0]

    def decode(self, probs: np.ndarray) -> Decoded:
        return decode(self.decoder, probs, self.options)

    def orient(self, pixels: np.ndarray, image_corners: np.ndarray,
               probabilities: Callable[[np.ndarray], np.ndarray] | None = None):
        """Which image corner is a1: an :class:`chessrec.orientation.OrientationResult`.

        ``probabilities`` maps board corners to class probabilities (default: crop and classify);
        passing a caching one lets the caller reuse the winner's probabilities.
        """
        from chessrec.orientation import HOME_SIDE_WEIGHT, checker_log_prior, decide_orientation, home_side_score

        probabilities = probabilities or (lambda corners: self.classify(self.crop(pixels, corners)))

        def plausibility(board_corners: np.ndarray) -> float:  # the decoder's own objective, and home sides
            probs = probabilities(board_corners)
            log_probs = log_probs_of(probs)
            labels = constrained(log_probs, self.options).labels
            return decode_score(log_probs, labels, self.options) + HOME_SIDE_WEIGHT * home_side_score(probs)

        empty = probabilities(order_corners(image_corners, "bottom-left"))[:, EMPTY]
        return decide_orientation(image_corners, plausibility,
                                  log_prior=checker_log_prior(pixels, image_corners, empty))

    def fit_to_position(self, pixels: np.ndarray, board_corners: np.ndarray,
                        labels: np.ndarray) -> tuple[np.ndarray, str, float]:
        """(corners, a1, gain in nats) of the board among the located one moved by a square either way
        and turned four ways that best shows a position known to stand there (a broadcast's start).

        Locating and orienting from the image alone can land a square off or a quarter turn wrong;
        a known position settles both.  The gain is the winner's log-probability over the located
        board's.  36 classifications, once per located board, each of one view only: ranking
        candidates a whole square apart needs no second view, and a relocation mid-game must not
        hold the next move back (half the time of mirror-averaged readings).
        """
        single = with_views(self.model, False)

        def fit(corners: np.ndarray) -> float:
            crops = {name: c[None] for name, c in self.crop(pixels, corners).items()}
            return board_log_prob(log_probs_of(single.predict_proba(crops)[0]), labels)

        located = np.asarray(board_corners, dtype=np.float64)
        best, best_a1, best_fit = located, a1_corner_of(located), fit(located)
        located_fit = best_fit
        for files, ranks in itertools.product((-1, 0, 1), repeat=2):
            shifted = shifted_board(located, files, ranks)
            try:
                image_corners = validate_corners(order_corners(shifted, "bottom-left"), pixels.shape)
            except UserError:  # a square off would leave the image: not this one
                continue
            for a1 in A1_POSITIONS:
                corners = order_corners(image_corners, a1)
                if np.allclose(corners, located):
                    continue
                score = fit(corners)
                if score > best_fit:
                    best, best_a1, best_fit = corners, a1, score
        return best, best_a1, best_fit - located_fit

    # ------------------------------------------------------------------------------------ the lock
    def lock_board(self, pixels: np.ndarray, board_corners: np.ndarray, a1: str) -> BoardLock:
        """Lock the board at these corners (a8, h8, h1, a1 order) for the frames that follow."""
        self.lock = BoardLock(np.asarray(board_corners, dtype=np.float64), a1, tuple(pixels.shape[:2]),
                              _checker(pixels, board_corners))
        return self.lock

    def unlock(self) -> None:
        self.lock = None

    def lock_holds(self, pixels: np.ndarray) -> bool:
        """Whether the locked board is still where it was: same frame size, same checker phase, clear pattern.

        One warp of the grey frame: a few milliseconds against the ~0.3 s of :meth:`locate`.
        """
        return self._checker_if_held(pixels) is not None

    def _checker_if_held(self, pixels: np.ndarray, min_share: float = LOCK_RECHECK_SHARE) -> float | None:
        """The frame's checker log-odds under the lock when the lock holds on it (same phase, at least
        ``min_share`` of the reference's strength), else None."""
        lock = self.lock
        if lock is None or tuple(pixels.shape[:2]) != lock.image_shape:
            return None
        if lock.checker == 0.0:  # nothing to re-check against: locate again
            return None
        now = _checker(pixels, lock.corners)
        held = np.sign(now) == np.sign(lock.checker) and abs(now) >= min_share * abs(lock.checker)
        return now if held else None

    def refresh_lock(self, pixels: np.ndarray, trusted: bool = False) -> None:
        """Take this frame's checker pattern as the lock's new reference, if the lock still holds on it.

        For a frame known to show the board still and unobstructed (a broadcast's settled frames): over a
        game, moved pieces and drifting light wear the pattern down slowly, and against the strength it had
        when locked the re-check would fail on a board that never moved (a relocation, and its cost, for
        nothing).  A moved camera or a hand still fails against the refreshed reference at once.

        ``trusted``: the caller read this frame under the lock and found it right (a broadcast decode the
        game's best history explains).  Then a weaker pattern of the same phase is taken too: one move can
        take more than half the pattern's strength at once (a piece onto a square of the other colour;
        28.6 -> 12.4 in a rendered game), and against the old reference every later frame would fail until
        a relocation.  A board slid by a square flips the phase and still fails.
        """
        now = self._checker_if_held(pixels, min_share=0.0 if trusted else LOCK_RECHECK_SHARE)
        if now is not None:
            self.lock = replace(self.lock, checker=now)

    # ----------------------------------------------------------------------------------- one frame
    def recognize(self, image, corners=None, a1: str | None = None) -> Recognition:
        """Recognise the position in one photo or frame.

        ``corners``: the board's four outer corners (x, y pixels) in any order, or None to use the
        lock or locate the board.  ``a1``: the image corner nearest a1 (one of
        :data:`chessrec.geometry.A1_POSITIONS`), or None to take it from the lock or decide it.
        """
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        if a1 is not None and a1 not in A1_POSITIONS:
            raise UserError(f"a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
        pixels, factor = read_image(image)
        timings["read"] = _ms_since(t0)
        image_corners = None
        if corners is not None:  # TL, TR, BR, BL, in the pixels read
            image_corners = validate_corners(order_corners(corners, "bottom-left") / factor, pixels.shape)
        t = time.perf_counter()
        self.model  # noqa: B018 - load it now, so its time is not counted as locating
        timings["load_model"] = _ms_since(t)

        t = time.perf_counter()
        from_lock = corners is None and self.lock_holds(pixels)
        if from_lock:
            image_corners = order_corners(self.lock.corners, "bottom-left")
            a1 = a1 or self.lock.a1
        elif image_corners is None:
            image_corners = self.locate(pixels, name=_image_name(image))
        timings["locate"] = _ms_since(t)

        probs_cache: dict[bytes, tuple[np.ndarray, float, float]] = {}  # corners -> (probs, crop ms, model ms)

        def probabilities(board_corners: np.ndarray) -> np.ndarray:
            key = np.asarray(board_corners, dtype=np.float64).tobytes()
            if key not in probs_cache:
                t_crop = time.perf_counter()
                crops = self.crop(pixels, board_corners)
                t_model = time.perf_counter()
                probs_cache[key] = (self.classify(crops), (t_model - t_crop) * 1e3, _ms_since(t_model))
            return probs_cache[key][0]

        t = time.perf_counter()
        scores: dict[str, float] = {}
        if a1 is None:
            result = self.orient(pixels, image_corners, probabilities)
            a1, board_corners = result.a1, np.asarray(result.corners, dtype=np.float64)
            scores = {str(k): float(v) for k, v in dict(result.scores).items()}
        else:
            board_corners = order_corners(image_corners, a1)
        probs = probabilities(board_corners)
        _, timings["crops"], timings["model"] = probs_cache[board_corners.tobytes()]
        # what deciding a1 added: the other rotations' crops and model runs included
        timings["orientation"] = _ms_since(t) - timings["crops"] - timings["model"]

        t = time.perf_counter()
        decoded = self.decode(probs)
        timings["decode"] = _ms_since(t)
        if self.keep_lock and corners is None and not from_lock:
            self.lock_board(pixels, board_corners, a1)
        timings["total"] = _ms_since(t0)
        return Recognition(
            fen=fen_from_labels(decoded.labels),
            labels=decoded.labels,
            confidence=probs[np.arange(64), decoded.labels].astype(np.float64),
            valid=decoded.valid,
            corners=board_corners * factor,
            a1=a1,
            decoder=self.decoder,
            probabilities=probs,
            orientation_scores=scores,
            timings_ms=timings,
            from_lock=from_lock,
        )


def recognize(image, corners=None, a1: str | None = None, decoder: str | None = None, model=None,
              strict: bool = True, topk: int = 32, mirror_average: bool = True,
              promotion_cost: float = PROMOTION_COST) -> Recognition:
    """Recognise the position in one photo (see :meth:`Recognizer.recognize`).

    ``model``: a model file or a loaded :class:`chessrec.inference.SquareModel` (default: the
    pipeline's model).  The user's corners and a1 are checked before the (slow) model load.
    """
    recognizer = Recognizer(model, decoder, strict=strict, topk=topk, lock=False, mirror_average=mirror_average,
                            promotion_cost=promotion_cost)
    return recognizer.recognize(image, corners=corners, a1=a1)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


# ------------------------------------------------------------------------------------------------ CLI
def parse_corners(text: str) -> np.ndarray:
    """``x1,y1,x2,y2,x3,y3,x4,y4`` -> (4, 2) floats, in whatever order the user gave them."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--corners must be 8 numbers x1,y1,...,x4,y4, got {text!r}") from None
    if len(values) != 8:
        raise UserError(f"--corners must be 8 numbers x1,y1,...,x4,y4, got {len(values)} in {text!r}")
    return np.array(values).reshape(4, 2)


def default_decoder(params_path: Path = Path("params.yaml")) -> str:
    """The pipeline's ``evaluate.best_decoder`` when run inside the project, else :data:`DEFAULT_DECODER`."""
    if params_path.is_file():
        from chessrec.config import load_params

        return load_params(params_path).evaluate.best_decoder
    return DEFAULT_DECODER


def register(subparsers) -> None:
    from chessrec.decoding import DECODER_NAMES

    parser = subparsers.add_parser("predict", help="print the FEN piece placement of a chessboard photo")
    parser.add_argument("image", help="photo of a chessboard (JPEG, PNG, ...; EXIF orientation is applied)")
    parser.add_argument("--corners", default=None,
                        help="the board's outer corners x1,y1,...,x4,y4 in pixels, any order (default: locate)")
    parser.add_argument("--a1", choices=A1_POSITIONS, default=None,
                        help="image corner nearest square a1 (default: decided from the image)")
    parser.add_argument("--decoder", choices=DECODER_NAMES, default=None,
                        help="decoder (default: evaluate.best_decoder of params.yaml, else constrained)")
    parser.add_argument("--model", default=None,
                        help=f"model file, .ckpt or .onnx (default: {DEFAULT_MODEL} when `dvc repro` made it, "
                             "else the model released with the package)")
    parser.add_argument("--no-strict", dest="strict", action="store_false",
                        help="allow study/composition positions (no king or piece-count rules)")
    parser.add_argument("--promotion-cost", type=float, default=PROMOTION_COST, metavar="NATS",
                        help=f"nats a board pays per promoted piece (default {PROMOTION_COST:g}; 0 reads any promotion "
                             "a missing pawn allows)")
    parser.add_argument("--single-view", dest="mirror_average", action="store_false",
                        help="read each square once, not also mirrored (half the model time, less accurate)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with confidences and timings")
    parser.set_defaults(func=_predict)


def _predict(args) -> int:
    corners = parse_corners(args.corners) if args.corners is not None else None
    result = recognize(args.image, corners=corners, a1=args.a1, decoder=args.decoder or default_decoder(),
                       model=args.model, strict=args.strict, mirror_average=args.mirror_average,
                       promotion_cost=args.promotion_cost)
    print(json.dumps(result.to_json()) if args.json else result.fen)
    return 0

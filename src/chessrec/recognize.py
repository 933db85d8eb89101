"""Reading the position off one photo: the Python API a broadcast system embeds, and ``chessrec predict``.

A photo goes through the same steps as the pipeline: board corners (given, or found by
:func:`chessrec.localisation.locate_board`), where a1 lies (given, or decided by
:func:`chessrec.orientation.decide_orientation` from the checker pattern, which side each colour
stands on and which rotation decodes most plausibly),
the model's square crops (:func:`chessrec.geometry.square_crops` with the spec it was trained
on), the classifier, and a decoder from :mod:`chessrec.decoding`.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chess
import numpy as np

from chessrec.decoding import DecodeOptions, check_decoder, decode
from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, order_corners, square_crops, validate_corners
from chessrec.labels import CLASS_SYMBOLS, CORNER_NAMES, EMPTY, fen_from_labels

#: the model ``dvc repro`` trains
DEFAULT_MODEL = Path("models/classifier.ckpt")
#: used when neither the caller nor params.yaml (``evaluate.best_decoder``) names one
DEFAULT_DECODER = "constrained"


@dataclass(frozen=True)
class Recognition:
    """A recognised position: FEN piece placement, per-square labels and confidence, and how it was read.

    ``corners`` are in :data:`chessrec.labels.CORNER_NAMES` order (a8, h8, h1, a1 corners);
    ``a1`` names the image corner nearest a1; ``timings_ms`` splits the latency by step.
    """

    fen: str
    labels: np.ndarray
    confidence: np.ndarray
    valid: bool
    corners: np.ndarray
    a1: str
    decoder: str
    orientation_scores: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fen": self.fen,
            "valid": self.valid,
            "decoder": self.decoder,
            "a1": self.a1,
            "corners": {name: [round(float(x), 2), round(float(y), 2)] for name, (x, y) in zip(CORNER_NAMES, self.corners)},
            "squares": {
                chess.square_name(sq): {"piece": CLASS_SYMBOLS[int(c)], "confidence": round(float(p), 4)}
                for sq, (c, p) in enumerate(zip(self.labels, self.confidence))
            },
            "orientation_scores": {k: round(v, 3) for k, v in self.orientation_scores.items()},
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


@functools.lru_cache(maxsize=4)
def _cached_classifier(path: Path, mtime_ns: int):
    from chessrec.training import load_classifier

    return load_classifier(path)


def load_model(model=None):
    """A classifier: loaded from a checkpoint path (cached while the file is unchanged), or passed through."""
    if model is not None and hasattr(model, "predict_proba"):
        return model
    path = Path(model) if model is not None else DEFAULT_MODEL
    if not path.is_file():
        raise UserError(f"{path}: model checkpoint not found (run `dvc repro` or pass --model)")
    return _cached_classifier(path.resolve(), path.stat().st_mtime_ns)


def read_image(image) -> np.ndarray:
    """H x W x 3 uint8 RGB from a path (EXIF orientation applied) or an array."""
    if isinstance(image, (str, Path)):
        from chessrec.imageio import read_rgb

        return read_rgb(image)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"image must be an H x W x 3 uint8 RGB array, got {image.shape} {image.dtype}")
    return image


def recognize(image, corners=None, a1: str | None = None, decoder: str | None = None, model=None,
              strict: bool = True, topk: int = 32) -> Recognition:
    """Recognise the position in one photo.

    ``corners``: the board's four outer corners (x, y pixels) in any order, or None to locate the board.
    ``a1``: the image corner nearest a1 (one of :data:`chessrec.geometry.A1_POSITIONS`), or None to decide
    it from the image.  ``model``: a checkpoint path or a loaded classifier (default: the pipeline's model).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    options = DecodeOptions(strict=strict, topk=topk)
    decoder = check_decoder(decoder or DEFAULT_DECODER)
    if a1 is not None and a1 not in A1_POSITIONS:
        raise UserError(f"a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
    pixels = read_image(image)
    timings["read"] = _ms_since(t0)
    if corners is not None:  # the user's input is checked before the (slow) model load
        image_corners = validate_corners(order_corners(corners, "bottom-left"), pixels.shape)  # TL, TR, BR, BL

    t = time.perf_counter()
    classifier = load_model(model)
    timings["load_model"] = _ms_since(t)

    t = time.perf_counter()
    if corners is None:
        from chessrec.localisation import locate_board

        image_corners = locate_board(pixels, name=str(image) if isinstance(image, (str, Path)) else "image")
    timings["locate"] = _ms_since(t)

    probs_cache: dict[bytes, tuple[np.ndarray, float, float]] = {}  # corners -> (probs, crop ms, model ms)

    def probabilities(board_corners: np.ndarray) -> np.ndarray:
        key = np.asarray(board_corners, dtype=np.float64).tobytes()
        if key not in probs_cache:
            t_crop = time.perf_counter()
            crops = square_crops(pixels, board_corners, classifier.crop_spec)
            t_model = time.perf_counter()
            probs = classifier.predict_proba(crops[None])[0]
            probs_cache[key] = (probs, (t_model - t_crop) * 1e3, _ms_since(t_model))
        return probs_cache[key][0]

    t = time.perf_counter()
    scores: dict[str, float] = {}
    if a1 is None:
        from chessrec.orientation import HOME_SIDE_WEIGHT, checker_log_prior, decide_orientation, home_side_score

        def plausibility(board_corners: np.ndarray) -> float:
            probs = probabilities(board_corners)
            return decode("constrained", probs, options).log_prob + HOME_SIDE_WEIGHT * home_side_score(probs)

        empty = probabilities(order_corners(image_corners, "bottom-left"))[:, EMPTY]
        result = decide_orientation(pixels, image_corners, plausibility,
                                    log_prior=checker_log_prior(pixels, image_corners, empty))
        a1, board_corners = result.a1, np.asarray(result.corners, dtype=np.float64)
        scores = {str(k): float(v) for k, v in dict(result.scores).items()}
    else:
        board_corners = order_corners(image_corners, a1)
    probs = probabilities(board_corners)
    _, timings["crops"], timings["model"] = probs_cache[board_corners.tobytes()]
    # what deciding a1 added: the other rotations' crops and model runs included
    timings["orientation"] = _ms_since(t) - timings["crops"] - timings["model"]

    t = time.perf_counter()
    decoded = decode(decoder, probs, options)
    timings["decode"] = _ms_since(t)
    timings["total"] = _ms_since(t0)
    return Recognition(
        fen=fen_from_labels(decoded.labels),
        labels=decoded.labels,
        confidence=probs[np.arange(64), decoded.labels].astype(np.float64),
        valid=decoded.valid,
        corners=board_corners,
        a1=a1,
        decoder=decoder,
        orientation_scores=scores,
        timings_ms=timings,
    )


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
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help=f"model checkpoint (default: {DEFAULT_MODEL})")
    parser.add_argument("--no-strict", dest="strict", action="store_false",
                        help="allow study/composition positions (no king or piece-count rules)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with confidences and timings")
    parser.set_defaults(func=_predict)


def _predict(args) -> int:
    corners = parse_corners(args.corners) if args.corners is not None else None
    result = recognize(args.image, corners=corners, a1=args.a1, decoder=args.decoder or default_decoder(),
                       model=args.model, strict=args.strict)
    print(json.dumps(result.to_json()) if args.json else result.fen)
    return 0

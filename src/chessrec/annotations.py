"""ChessReD-compatible annotation files: the on-disk label format of every data source.

Schema (one ``annotations.json`` at the dataset root, image paths relative to it)::

    {"info": {...},
     "categories": [{"id": 0, "name": "white-pawn"}, ..., {"id": 12, "name": "empty"}],
     "images": [{"id", "file_name", "path", "width", "height", "game_id", "move_id",
                 "camera": {...}}],
     "annotations": {
        "pieces":  [{"id", "image_id", "category_id", "chessboard_position": "e4"}],
        "corners": [{"image_id", "corners": {"top_left": [x, y], "top_right": ...,
                                              "bottom_right": ..., "bottom_left": ...}}]},
     "splits": {"train": {"image_ids": [...], "n_samples": n}, "val": ..., "test": ...}}

Corner names are as seen from White (``top_left`` is the a8 corner), see
:data:`chessrec.labels.CORNER_NAMES`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from chessrec.fileio import atomic_open
from chessrec.labels import CLASS_NAMES, CORNER_NAMES, EMPTY, BoardSample

ANNOTATIONS_FILE = "annotations.json"


def to_chessred(samples: list[BoardSample], root: Path, info: dict | None = None) -> dict:
    """The ChessReD document for ``samples``; image paths are written relative to ``root``."""
    images, pieces, corners = [], [], []
    splits: dict[str, list[int]] = {}
    for image_id, sample in enumerate(samples):
        rel = Path(os.path.relpath(sample.image_path, root)).as_posix()
        images.append({
            "id": image_id,
            "file_name": Path(rel).name,
            "path": rel,
            "game_id": sample.game_id,
            "move_id": int(sample.move_id),
            "camera": sample.camera,
        })
        for square, class_id in enumerate(np.asarray(sample.labels).tolist()):
            if class_id != EMPTY:
                pieces.append({
                    "id": len(pieces),
                    "image_id": image_id,
                    "category_id": int(class_id),
                    "chessboard_position": _square_name(square),
                })
        corners.append({
            "image_id": image_id,
            "corners": {name: [float(v) for v in xy] for name, xy in zip(CORNER_NAMES, sample.corners)},
        })
        splits.setdefault(sample.split, []).append(image_id)
    return {
        "info": info or {},
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
        "images": images,
        "annotations": {"pieces": pieces, "corners": corners},
        "splits": {k: {"image_ids": v, "n_samples": len(v)} for k, v in splits.items()},
    }


def write_annotations(samples: list[BoardSample], root: Path, info: dict | None = None) -> Path:
    """Write ``root/annotations.json`` atomically (a reader never sees half a file)."""
    root = Path(root)
    doc = to_chessred(samples, root, info)
    target = root / ANNOTATIONS_FILE
    with atomic_open(target, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    return target


def _square_name(square: int) -> str:
    return "abcdefgh"[square % 8] + str(square // 8 + 1)

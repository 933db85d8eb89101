"""Featurize: one fixed-size crop per square for every board photo, grouped by split.

The crops are cut by :func:`chessrec.geometry.square_crops`, the same function inference uses.
Output per split: a folder ``<split>/`` of ``.npy`` files, ``crops`` (N, 64, 3, H, W) uint8,
``labels`` (N, 64), ``game_id``, ``move_id`` and ``image_path`` (N,).  Same inputs and spec give
the same bytes.  Plain ``.npy`` (not ``.npz``): a zip container's header bytes change with the
Python version that wrote it, which would break the byte-identity check of ``dvc.lock``.
"""

from __future__ import annotations

from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from chessrec.errors import UserError
from chessrec.fileio import atomic_open
from chessrec.geometry import CropSpec, square_crops
from chessrec.imageio import read_rgb
from chessrec.labels import BoardSample

SPLITS = ("train", "val", "test")


def crop_sample(sample: BoardSample, spec: CropSpec) -> np.ndarray:
    return square_crops(read_rgb(sample.image_path), sample.corners, spec)


def _quiet_worker() -> None:
    cv2.setNumThreads(1)  # one OpenCV thread per worker process: no oversubscription of the cores


def _crop_job(args: tuple[BoardSample, CropSpec]) -> np.ndarray:
    return crop_sample(*args)


def featurize(samples: list[BoardSample], spec: CropSpec, out_dir: Path, workers: int = 2) -> dict[str, int]:
    """Write ``out_dir/<split>/`` for every split; returns boards per split."""
    jobs = [(s, spec) for s in samples]
    if workers > 1 and len(jobs) > 1:
        with get_context("spawn").Pool(workers, initializer=_quiet_worker) as pool:
            crops = list(tqdm(pool.imap(_crop_job, jobs, chunksize=8), total=len(jobs), desc="featurize", unit="board"))
    else:
        crops = [_crop_job(j) for j in tqdm(jobs, desc="featurize", unit="board")]
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        idx = [i for i, s in enumerate(samples) if s.split == split]
        h, w = spec.output_shape
        arrays = {
            "crops": np.stack([crops[i] for i in idx]) if idx else np.zeros((0, 64, 3, h, w), np.uint8),
            "labels": np.stack([samples[i].labels for i in idx]).astype(np.int64) if idx else np.zeros((0, 64), np.int64),
            "game_id": np.array([str(samples[i].game_id) for i in idx], dtype=str),
            "move_id": np.array([samples[i].move_id for i in idx], dtype=np.int64),
            "image_path": np.array([Path(samples[i].image_path).name for i in idx], dtype=str),
        }
        write_arrays(out_dir / split, arrays)
        counts[split] = len(idx)
    if counts.get("train", 0) == 0:
        raise UserError("featurize: the dataset has no 'train' split samples")
    return counts


def load_features(split_dir: Path) -> dict[str, np.ndarray]:
    """A featurize output (``data/features/<split>/``) as a dict of arrays."""
    files = sorted(Path(split_dir).glob("*.npy"))
    if not files:
        raise UserError(f"{split_dir}: features not found (run `dvc repro featurize` first)")
    return {f.stem: np.load(f, allow_pickle=False) for f in files}


def write_arrays(split_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    """One ``.npy`` file per array, each written atomically; stale arrays are removed."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in set(split_dir.glob("*.npy")) - {split_dir / f"{name}.npy" for name in arrays}:
        stale.unlink()
    for name, array in arrays.items():
        with atomic_open(split_dir / f"{name}.npy") as fh:
            np.save(fh, array, allow_pickle=False)

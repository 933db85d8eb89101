"""Featurize: fixed-size crops of every square of every board photo, per crop spec, grouped by split.

The crops are cut by :func:`chessrec.geometry.square_crops`, the same function inference uses,
once per named :class:`~chessrec.geometry.CropSpec` (one for a single classifier; an occupancy and
a piece spec for a two-stage system), each photo read once.  Output per split: a folder
``<split>/`` of ``.npy`` files, ``crops_<spec name>`` (N, 64, 3, H, W) uint8 for each spec,
``labels`` (N, 64), ``game_id``, ``move_id`` and ``image_path`` (N,).  Same inputs and specs give
the same bytes.  Plain ``.npy`` (not ``.npz``): a zip container's header bytes change with the
Python version that wrote it, which would break the byte-identity check of ``dvc.lock``.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from chessrec.errors import UserError
from chessrec.fileio import atomic_open, atomic_path
from chessrec.geometry import CropSpec, square_crops
from chessrec.imageio import read_rgb
from chessrec.labels import BoardSample

SPLITS = ("train", "val", "test")
#: file-name prefix of a spec's crops array
CROPS_PREFIX = "crops_"


def crop_sample(sample: BoardSample, specs: Mapping[str, CropSpec]) -> dict[str, np.ndarray]:
    """The 64 crops of one photo per spec, the photo read once."""
    pixels = read_rgb(sample.image_path)
    return {name: square_crops(pixels, sample.corners, spec) for name, spec in specs.items()}


def crops_by_spec(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The crops arrays of a loaded split, by spec name (what a model's ``predict_proba`` takes)."""
    return {key[len(CROPS_PREFIX):]: value for key, value in features.items() if key.startswith(CROPS_PREFIX)}


def _quiet_worker() -> None:
    cv2.setNumThreads(1)  # one OpenCV thread per worker process: no oversubscription of the cores


#: the per-board arrays beside the crops, in every split
BOARD_ARRAYS = ("labels", "game_id", "move_id", "image_path")


def _board_arrays(boards: list[BoardSample]) -> dict[str, np.ndarray]:
    """Labels and identity of each board of a split (see :data:`BOARD_ARRAYS`)."""
    return {
        "labels": np.stack([b.labels for b in boards]).astype(np.int64) if boards else np.zeros((0, 64), np.int64),
        "game_id": np.array([str(b.game_id) for b in boards], dtype=str),
        "move_id": np.array([b.move_id for b in boards], dtype=np.int64),
        "image_path": np.array([Path(b.image_path).name for b in boards], dtype=str),
    }


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.2f} MB"


def _check_disk_space(out_dir: Path, needed: int) -> None:
    """Refuse before writing anything when the crops cannot fit on ``out_dir``'s disk."""
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise UserError(f"{out_dir}: not enough disk space for the crops: {_size(needed)} needed, "
                        f"{_size(free)} free (free some space, or render fewer boards: data.n_games, "
                        "data.n_random)")


def _reserve(path: Path, final: Path) -> None:
    """Allocate a memory-mapped file's blocks now: a full disk is then a one-line error here, not a
    SIGBUS in a worker writing into a sparse file (which would leave the pool waiting forever)."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise UserError(f"{final}: no space left on the device for its {_size(size)} of crops "
                            "(free some space, or render fewer boards: data.n_games, data.n_random)") from None


def _crop_into(job: tuple[BoardSample, Mapping[str, CropSpec], Mapping[str, str], int]) -> None:
    """Cut one photo's crops and write them into row ``row`` of each spec's crops file."""
    sample, specs, files, row = job
    for name, crops in crop_sample(sample, specs).items():
        out = np.load(files[name], mmap_mode="r+")
        out[row] = crops
        out.flush()


def featurize(samples: list[BoardSample], specs: Mapping[str, CropSpec], out_dir: Path,
              workers: int = 2) -> dict[str, int]:
    """Write ``out_dir/<split>/`` for every split; returns boards per split.

    Each worker writes its crops straight into the split's memory-mapped ``.npy`` files (created at
    full size first, then moved into place when all are written): shipping 2 GB of crops back to
    one process to stack them took about half of this stage's 50 s.
    """
    if not specs:
        raise UserError("featurize: no crop spec to cut")
    rows = {split: [i for i, s in enumerate(samples) if s.split == split] for split in SPLITS}
    if not rows["train"]:
        raise UserError("featurize: the dataset has no 'train' split samples")
    for split in SPLITS:  # temp files a killed run left behind (before the space check: they take some)
        for leftover in (out_dir / split).glob(".*.npy.*.tmp"):
            leftover.unlink()
    targets = {(split, name): out_dir / split / f"{CROPS_PREFIX}{name}.npy" for split in SPLITS for name in specs}
    shapes = {(split, name): (len(rows[split]), 64, 3, *specs[name].output_shape) for split, name in targets}
    _check_disk_space(out_dir, sum(int(np.prod(shape)) for shape in shapes.values()))
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as staging:  # every file of every split moves into place only once all are written
        files = {key: staging.enter_context(atomic_path(target)) for key, target in targets.items()}
        for (split, name), path in files.items():
            shape = shapes[split, name]
            if rows[split]:
                np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape).flush()
                _reserve(path, targets[split, name])
            else:
                with open(path, "wb") as fh:  # a memory map cannot be empty
                    np.save(fh, np.zeros(shape, np.uint8), allow_pickle=False)
        jobs = [(samples[i], dict(specs), {name: str(files[split, name]) for name in specs}, row)
                for split in SPLITS for row, i in enumerate(rows[split])]
        if workers > 1 and len(jobs) > 1:
            with get_context("spawn").Pool(workers, initializer=_quiet_worker) as pool:
                for _ in tqdm(pool.imap_unordered(_crop_into, jobs, chunksize=8), total=len(jobs), desc="featurize",
                              unit="board", disable=None):
                    pass
        else:
            for job in tqdm(jobs, desc="featurize", unit="board", disable=None):
                _crop_into(job)
        for split in SPLITS:
            for name, array in _board_arrays([samples[i] for i in rows[split]]).items():
                with open(staging.enter_context(atomic_path(out_dir / split / f"{name}.npy")), "wb") as fh:
                    np.save(fh, array, allow_pickle=False)
    written = {f"{name}.npy" for name in [*(f"{CROPS_PREFIX}{spec}" for spec in specs), *BOARD_ARRAYS]}
    for split in SPLITS:  # arrays of an earlier run's specs
        for stale in (out_dir / split).glob("*.npy"):
            if stale.name not in written:
                stale.unlink()
    return {split: len(idx) for split, idx in rows.items()}


def load_features(split_dir: Path, mmap: bool = False) -> dict[str, np.ndarray]:
    """A featurize output (``data/features/<split>/``) as a dict of arrays.

    ``mmap``: map the files read-only instead of reading them, for a caller that takes a subset of
    the squares (training keeps about 40% of the piece crops): on these machines reading the 1.4 GB
    training split into fresh memory took 7-11 s, mapping it and copying the rows used 0.2 s.
    """
    files = sorted(Path(split_dir).glob("*.npy"))
    if not files:
        raise UserError(f"{split_dir}: features not found (run `dvc repro featurize` first)")
    return {f.stem: _load_array(f, mmap) for f in files}


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a readable feature array (truncated or corrupt: {first}); "
                        "re-run `dvc repro featurize`") from None


def write_arrays(split_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    """One ``.npy`` file per array, each written atomically; stale arrays are removed."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in set(split_dir.glob("*.npy")) - {split_dir / f"{name}.npy" for name in arrays}:
        stale.unlink()
    for name, array in arrays.items():
        with atomic_open(split_dir / f"{name}.npy") as fh:
            np.save(fh, array, allow_pickle=False)

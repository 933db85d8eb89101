"""Real and rendered data sets, validated and normalised into :class:`~chessrec.labels.BoardSample`.

Sources (the ``data.source`` parameter):

- ``synthetic``: a folder written by :func:`chessrec.synth.render_dataset` (ChessReD format);
- ``chessred``: a ChessReD folder, ``annotations.json`` + images (only images with annotated
  corners are usable: ChessReD2K has them, the rest is reported as skipped);
- ``chesscog``: per-image JSON files (``image`` or ``image_path``, else the image beside the JSON
  with the same stem; ``corners`` as four points in any order; ``fen``), or one ``labels.json``
  mapping image file -> such a record.

Every sample is checked before any work: the image exists inside the data set folder and
decodes, the FEN is valid, the corners form a convex quadrilateral inside the image, no square
holds two pieces.  A bad sample stops the load with one line naming the file and the problem,
or, with ``skip_bad``, is left out and counted in the :class:`DatasetLoad` report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from chessrec import registry
from chessrec.annotations import ANNOTATIONS_FILE, write_annotations
from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, order_corners, validate_corners
from chessrec.labels import CORNER_NAMES, EMPTY, NUM_CLASSES, BoardSample, LabelError, labels_from_fen, square_index

SPLIT_FRACTIONS = (("train", 0.7), ("val", 0.85), ("test", 1.0))  # cumulative, for data sets without splits
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SINGLE_LABELS_FILE = "labels.json"

# problem kinds in a skipped-sample report
MISSING_IMAGE = "missing image"
UNREADABLE_IMAGE = "unreadable image"
ESCAPING_PATH = "image path escapes the data set folder"
INVALID_FEN = "invalid FEN"
BAD_CORNERS = "bad corners"
MISSING_CORNERS = "no corner annotation"
DOUBLE_OCCUPANCY = "two pieces on one square"
BAD_LABEL = "invalid piece label"
BAD_RECORD = "malformed record"


class Skipped(NamedTuple):
    file: str
    problem: str
    detail: str


@dataclass
class DatasetLoad:
    """The usable samples of a data set and what was left out, and why."""

    samples: list[BoardSample]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of skipped samples per problem kind."""
        return dict(Counter(s.problem for s in self.skipped))

    def report(self, limit: int = 20) -> str:
        """A human-readable summary: totals per problem, then the first ``limit`` files."""
        total = len(self.samples) + len(self.skipped)
        if not self.skipped:
            return f"loaded {total} samples, none skipped"
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        lines = [f"loaded {len(self.samples)} of {total} samples; skipped {len(self.skipped)}: {kinds}"]
        lines += [f"  {s.file}: {s.problem} ({s.detail})" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


class _BadSample(Exception):
    def __init__(self, problem: str, detail: str):
        super().__init__(detail)
        self.problem, self.detail = problem, detail


class _Collector:
    """Raise on the first bad sample, or record it and carry on (``skip_bad``)."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.samples: list[BoardSample] = []
        self.skipped: list[Skipped] = []

    @contextlib.contextmanager
    def sample(self, file: str, always_skip: tuple[str, ...] = ()) -> Iterator[None]:
        try:
            yield
        except _BadSample as bad:
            if not (self.skip_bad or bad.problem in always_skip):
                raise UserError(f"{file}: {bad.problem}: {bad.detail}") from None
            self.skipped.append(Skipped(file, bad.problem, bad.detail))

    def result(self, where: Path) -> DatasetLoad:
        if not self.samples:
            reason = f" ({len(self.skipped)} skipped, e.g. {self.skipped[0].file}: {self.skipped[0].problem})" \
                if self.skipped else ""
            raise UserError(f"{where}: no usable samples{reason}")
        return DatasetLoad(self.samples, self.skipped)


# --------------------------------------------------------------------------- checks


def _inside(root: Path, relative: str) -> Path:
    """The image path, refusing paths that leave the data set folder (``../``, absolute, symlinks)."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise _BadSample(ESCAPING_PATH, f"{relative!r} resolves outside {root}")
    return path


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image as it will be read (EXIF orientation applied), after checking it decodes.

    JPEGs are decoded at reduced scale, which still catches truncated or corrupt files cheaply.
    """
    if not path.is_file():
        raise _BadSample(MISSING_IMAGE, f"{path} does not exist")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
            im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _BadSample(UNREADABLE_IMAGE, f"{path}: {exc}") from None
    return height, width


def _checked_corners(corners, shape: tuple[int, int]) -> np.ndarray:
    try:
        return validate_corners(corners, shape)
    except UserError as exc:
        raise _BadSample(BAD_CORNERS, str(exc)) from None


def split_for(key: str) -> str:
    """A stable split for data sets that define none: by hash of ``key`` (a game or file name)."""
    u = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2**64
    return next(name for name, upper in SPLIT_FRACTIONS if u < upper)


# --------------------------------------------------------------------------- ChessReD


def load_chessred(root: Path, skip_bad: bool = False) -> DatasetLoad:
    """A ChessReD folder: ``annotations.json`` (images, pieces, corners, splits) + images."""
    root = Path(root)
    doc = _read_json(root / ANNOTATIONS_FILE)
    try:
        images = doc["images"]
        pieces = doc["annotations"]["pieces"]
        corner_records = doc["annotations"]["corners"]
    except (KeyError, TypeError) as exc:
        raise UserError(f"{root / ANNOTATIONS_FILE}: not a ChessReD annotation file (missing {exc})") from None
    by_image: dict[int, list[dict]] = {}
    for piece in pieces:
        by_image.setdefault(piece.get("image_id"), []).append(piece)
    corners = {c.get("image_id"): c.get("corners") for c in corner_records}
    split_of = {image_id: name for name, entry in (doc.get("splits") or {}).items()
                if name in ("train", "val", "test") for image_id in entry.get("image_ids", [])}
    out = _Collector(skip_bad)
    for record in images:
        file = str(record.get("path") or record.get("file_name") or f"image id {record.get('id')}")
        with out.sample(file, always_skip=(MISSING_CORNERS,)):
            image_id = record.get("id")
            if "path" not in record and "file_name" not in record:
                raise _BadSample(BAD_RECORD, "image entry has no 'path'")
            if corners.get(image_id) is None:
                raise _BadSample(MISSING_CORNERS, "the image has no board corners in annotations.corners")
            path = _inside(root, file)
            shape = image_shape(path)
            try:
                quad = [corners[image_id][name] for name in CORNER_NAMES]
            except (KeyError, TypeError):
                raise _BadSample(BAD_CORNERS, f"corners need {', '.join(CORNER_NAMES)}") from None
            pts = _checked_corners(quad, shape)
            labels = _labels_from_pieces(by_image.get(image_id, []))
            game = str(record.get("game_id", Path(file).parent.as_posix()))
            out.samples.append(BoardSample(path, labels, pts, game, int(record.get("move_id", 0)),
                                           split_of.get(image_id) or split_for(game), record.get("camera") or {}))
    return out.result(root)


def _labels_from_pieces(pieces: list[dict]) -> np.ndarray:
    labels = np.full(64, EMPTY, dtype=np.int64)
    for piece in pieces:
        category, position = piece.get("category_id"), piece.get("chessboard_position")
        if not isinstance(category, int) or not 0 <= category < NUM_CLASSES:
            raise _BadSample(BAD_LABEL, f"category_id {category!r} is not in 0..{NUM_CLASSES - 1}")
        try:
            square = square_index(str(position))
        except LabelError as exc:
            raise _BadSample(BAD_LABEL, str(exc)) from None
        if category == EMPTY:
            continue
        if labels[square] != EMPTY:
            raise _BadSample(DOUBLE_OCCUPANCY, f"{position} holds categories {labels[square]} and {category}")
        labels[square] = category
    return labels


# --------------------------------------------------------------------------- chesscog-style


def load_chesscog(root: Path, skip_bad: bool = False, a1: str = "bottom-left") -> DatasetLoad:
    """chesscog-style labels: per-image JSON files, or one ``labels.json`` mapping file -> record.

    Corners may come in any order; they are sorted geometrically and rotated so that the a1
    corner is where ``a1`` says (White at the bottom of the photo by default).  A record may
    override this with its own ``"a1"``; chesscog's ``"white_turn": false`` means the photo was
    taken from Black's side.  Subfolders named train/val/test give the split; otherwise each
    record's ``split`` key, else a hash of the file name.
    """
    root = Path(root)
    if a1 not in A1_POSITIONS:
        raise UserError(f"a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
    single = root if root.is_file() else root / SINGLE_LABELS_FILE
    if single.is_file():
        mapping = _read_json(single)
        if not isinstance(mapping, dict):
            raise UserError(f"{single}: expected an object mapping image file -> {{corners, fen}}")
        base = single.parent
        records = [(f"{single.name}[{name}]", base, name, rec) for name, rec in sorted(mapping.items())]
    elif root.is_dir():
        base = root
        records = []
        for path in sorted(root.rglob("*.json")):
            rec = _read_json(path)
            records.append((path.relative_to(root).as_posix(), path.parent, _sibling_image(path, rec), rec))
    else:
        raise UserError(f"{root}: no such data set folder")
    out = _Collector(skip_bad)
    for index, (file, folder, image_rel, rec) in enumerate(records):
        with out.sample(file):
            if not isinstance(rec, dict) or "corners" not in rec or "fen" not in rec:
                raise _BadSample(BAD_RECORD, "a record needs 'corners' and 'fen'")
            if isinstance(rec.get("image") or rec.get("image_path"), str):
                image_rel = rec.get("image") or rec.get("image_path")
            if image_rel is None:
                raise _BadSample(MISSING_IMAGE, "no 'image' key and no image file beside the JSON")
            path = _inside(base, os.path.relpath(folder / image_rel, base))
            shape = image_shape(path)
            try:
                labels = labels_from_fen(str(rec["fen"]))
            except LabelError as exc:
                raise _BadSample(INVALID_FEN, str(exc)) from None
            side = rec.get("a1") or (_opposite(a1) if rec.get("white_turn") is False else a1)
            try:
                pts = order_corners(rec["corners"], a1=side)
            except UserError as exc:
                raise _BadSample(BAD_CORNERS, str(exc)) from None
            pts = _checked_corners(pts, shape)
            rel = path.relative_to(base.resolve())
            split = rec.get("split") or next((p for p in rel.parts[:-1] if p in ("train", "val", "test")), None)
            game = str(rec.get("game_id", rel.parent.as_posix() if rel.parent.parts else base.name))
            out.samples.append(BoardSample(path, labels, pts, game, int(rec.get("move_id", index)),
                                           split or split_for(rel.as_posix()), rec.get("camera") or {}))
    return out.result(root)


def _opposite(a1: str) -> str:
    return A1_POSITIONS[(A1_POSITIONS.index(a1) + 2) % 4]


def _sibling_image(json_path: Path, rec) -> str | None:
    if isinstance(rec, dict) and (rec.get("image") or rec.get("image_path")):
        return None  # the record names its image
    for suffix in IMAGE_SUFFIXES:
        candidate = json_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate.name
    return None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


# --------------------------------------------------------------------------- entry points


def load_dataset(source: str, path: Path, skip_bad: bool = False) -> DatasetLoad:
    """Load a data set of kind ``source`` (``synthetic``, ``chessred`` or ``chesscog``) from ``path``."""
    if source not in LOADERS:
        raise UserError(f"data.source must be one of {', '.join(LOADERS)}, got {source!r}")
    if path is None:
        raise UserError(f"data.path must name the {source} data set folder")
    return LOADERS[source](Path(path), skip_bad)


#: data source -> loader; the renderer writes ChessReD's format
LOADERS = dict(zip(registry.DATA_SOURCES, (load_chessred, load_chessred, load_chesscog), strict=True))


@contextlib.contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary sibling of ``out_dir`` that replaces it only if the block completes.

    The sibling's name carries this process's id, so that the next run can remove what a killed
    one (SIGKILL, a power cut: no clean-up ran) left behind, a rendered data set's worth of disk.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    try:
        yield tmp
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_abandoned_staging(out_dir: Path) -> None:
    """Delete ``staged_dir``'s siblings of ``out_dir`` whose process is gone (one still running keeps its own)."""
    for sibling in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, rest = sibling.name.removeprefix(f".{out_dir.name}.").partition("-")
        pid = rest.partition("-")[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def import_dataset(source: str, path: Path, out_dir: Path, skip_bad: bool = False) -> list[BoardSample]:
    """Copy a real data set's usable samples into ``out_dir`` in ChessReD format (what ``prepare`` does).

    The skipped-sample report is printed and kept as ``out_dir/skipped.json``.
    """
    load = load_dataset(source, path, skip_bad)
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        staged = []
        for k, sample in enumerate(load.samples):
            name = f"{k:05d}_{sample.image_path.name}"
            (tmp / "images").mkdir(exist_ok=True)
            shutil.copyfile(sample.image_path, tmp / "images" / name)
            staged.append(replace(sample, image_path=tmp / "images" / name))
        write_annotations(staged, tmp, info={"description": f"imported {source} data set", "source": str(path)})
        (tmp / "skipped.json").write_text(json.dumps(
            {"counts": load.counts, "skipped": [s._asdict() for s in load.skipped]}, indent=1))
    print(f"prepare: {load.report()}")
    return [replace(s, image_path=out_dir / "images" / s.image_path.name) for s in staged]

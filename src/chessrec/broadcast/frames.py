"""Where frames come from: a video file, a folder of frames in name order, or a camera index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chessrec.errors import UserError

#: frame files a folder source reads, in sorted name order
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Frame:
    """One frame: its index in the stream, its time in seconds from the first, RGB pixels."""

    index: int
    time_s: float
    pixels: np.ndarray


def frames_from(source: str, fps: float | None = None) -> Iterator[Frame]:
    """Frames of ``source``: a camera index ("0"), a folder of image files, or a video file.

    ``fps`` times a folder's frames (default 5 per second); a video or camera gives its own times.
    """
    if source.isdigit():
        return _capture(int(source), source)
    path = Path(source)
    if path.is_dir():
        return _folder(path, fps or 5.0)
    if not path.is_file():
        raise UserError(f"{source}: no such video file, frame folder or camera index")
    return _capture(str(path), source)


def _folder(folder: Path, fps: float) -> Iterator[Frame]:
    from chessrec.imageio import read_rgb

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no frame files ({', '.join(FRAME_SUFFIXES)}) in this folder")

    def frames() -> Iterator[Frame]:
        for index, file in enumerate(files):
            yield Frame(index, index / fps, read_rgb(file))

    return frames()


def _capture(target: int | str, name: str) -> Iterator[Frame]:
    import cv2

    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        raise UserError(f"{name}: OpenCV cannot open this {'camera' if isinstance(target, int) else 'video'}")
    ok, first = capture.read()
    if not ok:
        capture.release()
        raise UserError(f"{name}: no frame could be read (not a video OpenCV can decode, or empty)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0

    def frames() -> Iterator[Frame]:
        ok, bgr, index = True, first, 0
        try:
            while ok:
                time_s = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1e3
                yield Frame(index, float(time_s), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                ok, bgr = capture.read()
                index += 1
        finally:
            capture.release()

    return frames()

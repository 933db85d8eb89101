"""Telling a still board from a hand over it: frame differencing on the warped board.

The board is warped to a small grey square; a frame is *still* when it differs from the frame
before by less than ``threshold`` (mean absolute grey level, 0-255), and a still period is
*settled* once it has lasted ``frames`` frames.  Each settled period is decoded twice: at once,
and again ``confirm_s`` seconds later, so that the game decoder sees the new position confirmed
and can publish the move within about a second, not only after the next move.  The position
cannot change without motion, and a hand over the board is motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from chessrec.errors import UserError

#: side of the warped grey board the differencing reads, in pixels
WARP_SIDE = 96


@dataclass(frozen=True)
class SettleOptions:
    threshold: float = 4.0
    frames: int = 1
    confirm_s: float = 0.4

    def __post_init__(self) -> None:
        if not self.threshold > 0 or self.frames < 1 or not self.confirm_s >= 0:
            raise UserError(f"settle threshold must be > 0, frames >= 1 and confirm_s >= 0, got {self.threshold}, "
                            f"{self.frames}, {self.confirm_s}")


def board_grey(pixels: np.ndarray, board_corners: np.ndarray) -> np.ndarray:
    """The board (corners a8, h8, h1, a1) warped to a WARP_SIDE x WARP_SIDE float32 grey image."""
    target = np.float32([[0, 0], [WARP_SIDE, 0], [WARP_SIDE, WARP_SIDE], [0, WARP_SIDE]])
    matrix = cv2.getPerspectiveTransform(np.float32(board_corners), target)
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return cv2.warpPerspective(grey, matrix, (WARP_SIDE, WARP_SIDE), flags=cv2.INTER_AREA).astype(np.float32)


class SettleDetector:
    """Feed it each frame's warped board and time; it says which frames to decode."""

    def __init__(self, options: SettleOptions = SettleOptions()):
        self.options = options
        self.reset()

    def reset(self) -> None:
        self.previous: np.ndarray | None = None
        self.still = 0
        self.decodes_this_period = 0
        self.first_decode_s = 0.0

    @property
    def confirming(self) -> bool:
        """Whether the frame just let through confirms its still period's first decode (no motion since)."""
        return self.decodes_this_period == 2

    def motion(self, grey: np.ndarray) -> float:
        return float("inf") if self.previous is None else float(np.abs(grey - self.previous).mean())

    def push(self, grey: np.ndarray, time_s: float) -> tuple[bool, float]:
        """(decode this frame?, its motion): the settled frame of a still period, and its confirmation."""
        motion = self.motion(grey)
        self.previous = grey
        if motion >= self.options.threshold:
            self.still, self.decodes_this_period = 0, 0
            return False, motion
        self.still += 1
        if self.still < self.options.frames:
            return False, motion
        if self.decodes_this_period == 0:
            self.decodes_this_period, self.first_decode_s = 1, time_s
            return True, motion
        if self.decodes_this_period == 1 and time_s - self.first_decode_s >= self.options.confirm_s - 1e-6:
            self.decodes_this_period = 2
            return True, motion
        return False, motion

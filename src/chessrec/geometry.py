"""Board geometry, stated once and shared by featurize, training, evaluation and inference.

Coordinates: image points are (x, y) pixels; the *board frame* measures in square widths with
a8's outer corner at (0, 0) and h1's at (8, 8) (the standard diagram, White at the bottom), so
square ``sq`` (python-chess index) spans files ``[sq % 8, sq % 8 + 1]`` and rows
``[7 - sq // 8, 8 - sq // 8]``.  Corners are always in :data:`chessrec.labels.CORNER_NAMES`
order (a8, h8, h1, a1), which is clockwise on screen for any camera looking down on the board.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chessrec import registry
from chessrec.errors import UserError
from chessrec.fileio import write_image
from chessrec.imageio import check_rgb

#: where the a1 corner lies in the image -> how many quarter turns to rotate image-ordered corners
A1_POSITIONS = ("bottom-left", "bottom-right", "top-right", "top-left")

#: a board side shorter than this (pixels) cannot give usable 64 crops
MIN_BOARD_SIDE_PX = 64.0
#: how far the homography's two constraints on the focal length may disagree (the larger
#: residual, relative to the larger constraint) before a photo stops counting as a centred
#: pinhole photo: corners clicked by hand on 30 phone photos (real-dev) reach 0.49
FOCAL_DISAGREEMENT = 0.6
#: bounds of a crop's size (its width in pixels), the one bound config and CropSpec both apply
CROP_SIZE_MIN, CROP_SIZE_MAX = 8, 256
#: the name of the one crop spec of a single-crop square classifier
SQUARE_CROPS = "square"
#: the crop specs of a two-stage (cascade) recogniser: small crops for occupancy, tall ones for the piece
OCCUPANCY_CROPS, PIECE_CROPS = "occupancy", "piece"

_BOARD_UNIT_CORNERS = np.array([[0, 0], [8, 0], [8, 8], [0, 8]], dtype=np.float64)
_FILES = np.arange(64) % 8
_ROWS = 7 - np.arange(64) // 8  # row in the board frame (0 = rank 8)


def order_corners(points, a1: str = "bottom-left") -> np.ndarray:
    """Board corners in :data:`chessrec.labels.CORNER_NAMES` order from four points in any order.

    The points are first sorted geometrically into the image's top-left, top-right,
    bottom-right, bottom-left (clockwise on screen, starting from the point nearest the
    image's top-left); then rotated so that the corner named by ``a1`` becomes the a1 corner.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (4, 2) or not np.all(np.isfinite(pts)):
        raise UserError(f"corners must be four finite (x, y) points, got shape {pts.shape}")
    if a1 not in A1_POSITIONS:
        raise UserError(f"a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
    centre = pts.mean(axis=0)
    # clockwise on screen (y grows downward) == increasing atan2 angle
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    ring = pts[np.argsort(angles)]
    start = int(np.argmin(ring.sum(axis=1)))  # nearest the image's top-left
    image_order = np.roll(ring, -start, axis=0)  # TL, TR, BR, BL of the image
    # image_order[3] is the image's bottom-left; a1 must land at index 3 (bottom_left)
    a1_index_in_image = {"top-left": 0, "top-right": 1, "bottom-right": 2, "bottom-left": 3}[a1]
    return np.roll(image_order, 3 - a1_index_in_image, axis=0)


def a1_corner_of(corners) -> str:
    """Which image corner (:data:`A1_POSITIONS`) holds a1, for corners in a8, h8, h1, a1 order."""
    corners = np.asarray(corners, dtype=np.float64)
    return next(a1 for a1 in A1_POSITIONS if np.allclose(order_corners(corners, a1), corners))


def board_sides(corners) -> np.ndarray:
    """Lengths (pixels) of the quad's four sides, a8-h8, h8-h1, h1-a1, a1-a8."""
    pts = np.asarray(corners, dtype=np.float64)
    return np.linalg.norm(np.roll(pts, -1, axis=0) - pts, axis=1)


def validate_corners(corners, image_shape: tuple[int, ...], min_side: float = MIN_BOARD_SIDE_PX) -> np.ndarray:
    """Corners as float64 (4, 2), or a :class:`UserError` saying why they cannot be a board.

    Rejects what would otherwise come out as a confident but meaningless FEN: points off the
    image, a quad that is self-intersecting, non-convex or mirrored (not clockwise), and
    boards too small to show pieces.
    """
    pts = np.asarray(corners, dtype=np.float64)
    if pts.shape != (4, 2) or not np.all(np.isfinite(pts)):
        raise UserError(f"board corners must be four finite (x, y) points, got shape {pts.shape}")
    height, width = image_shape[:2]
    if np.any(pts < -0.5) or np.any(pts[:, 0] > width - 0.5) or np.any(pts[:, 1] > height - 0.5):
        raise UserError(f"board corners {pts.round(1).tolist()} lie outside the {width}x{height} image")
    edges = np.roll(pts, -1, axis=0) - pts
    sides = board_sides(pts)
    if sides.min() < min_side:
        raise UserError(f"board is too small: shortest side {sides.min():.0f} px < {min_side:.0f} px")
    following = np.roll(edges, -1, axis=0)
    # the z of each 2-D cross product, written out: numpy 2.5 no longer crosses 2-D vectors
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]  # >0 == clockwise on screen (y down)
    if not np.all(turns > 1e-6 * sides.max() ** 2):
        raise UserError(
            "board corners do not form a convex clockwise quadrilateral in a8, h8, h1, a1 order "
            f"(self-intersecting, degenerate or mirrored): {pts.round(1).tolist()}"
        )
    return pts


def board_homography(corners, side: float = 8.0) -> np.ndarray:
    """3x3 homography from image pixels to the rectified board of ``side`` pixels (a8 top-left).

    Its inverse (``np.linalg.inv``) maps the rectified board back into the image.
    """
    dst = (_BOARD_UNIT_CORNERS * (side / 8.0)).astype(np.float32)
    return cv2.getPerspectiveTransform(np.asarray(corners, dtype=np.float32), dst).astype(np.float64)


def shifted_board(corners, files: int, ranks: int) -> np.ndarray:
    """The board quad (a8, h8, h1, a1 order) moved by whole squares along its own grid.

    ``files`` > 0 moves it towards the h-file, ``ranks`` > 0 towards rank 8.  A lattice of
    x-corners is the same one square further on, so a located board can be one square off;
    these are the candidates that put it right.
    """
    to_image = np.linalg.inv(board_homography(corners))
    return _project(to_image, _BOARD_UNIT_CORNERS + np.array([files, -ranks], dtype=np.float64))


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def camera_elevation(corners, image_shape: tuple[int, ...] | None = None) -> float:
    """Camera elevation above the board plane at the board centre, degrees (90 = straight down).

    Read off the foreshortening of the homography: a square seen at elevation e is squashed by
    sin(e) along the direction pieces stand in the image.
    """
    shape = image_shape or _shape_around(np.asarray(corners, dtype=np.float64))
    _, _, ratio, _ = _local_frames(board_homography(corners), np.array([[4.0, 4.0]]), shape)
    return float(np.degrees(np.arcsin(ratio[0])))


def _shape_around(pts: np.ndarray) -> tuple[int, int]:
    """An image shape centred on the board, for callers that do not know the photo's size."""
    far = np.abs(pts).max(axis=0) * 2.0 + 1.0
    return int(far[1]), int(far[0])


def _vertical_vanishing_point(img_to_board: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray | None:
    """Image point (homogeneous) where the board normal vanishes, or None when it cannot be trusted.

    Assumes square pixels and the principal point at the image centre; the focal length then
    follows from the homography (Zhang's two constraints on the plane's rotation).  Photos that
    were warped after capture break those assumptions, which shows as an implausible focal
    length or a vertical far from the image's own; the caller then falls back to "image up".
    """
    height, width = image_shape[:2]
    longest = float(max(height, width))
    # centred coordinates in units of the image's longest side keep both constraints well scaled
    centre = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, longest]], dtype=np.float64) / longest
    g = centre @ np.linalg.inv(img_to_board)  # board -> centred image
    g /= np.linalg.norm(g)
    a, b = g[:, 0], g[:, 1]
    rows = np.array([[a[0] * b[0] + a[1] * b[1], a[2] * b[2]],
                     [a[0] ** 2 + a[1] ** 2 - b[0] ** 2 - b[1] ** 2, a[2] ** 2 - b[2] ** 2]])
    inv_f2 = -(rows[:, 0] @ rows[:, 1]) / max(rows[:, 0] @ rows[:, 0], 1e-300)  # 1/f^2, f in image sides
    if not 1.0 / 5.0 ** 2 < inv_f2 < 1.0 / 0.3 ** 2:
        return None
    if np.abs(rows @ np.array([inv_f2, 1.0])).max() > FOCAL_DISAGREEMENT * np.abs(rows[:, 0]).max() * inv_f2:
        return None  # the two constraints disagree: not a plain pinhole photo
    horizon = np.linalg.inv(g)[2]  # the horizon line in centred coordinates
    vp = np.array([horizon[0] / inv_f2, horizon[1] / inv_f2, horizon[2]])
    return np.linalg.inv(centre) @ vp


def _local_frames(img_to_board: np.ndarray, board_pts: np.ndarray, image_shape: tuple[int, ...]):
    """Per board point: image position, image "up" unit vector, foreshortening, pixels per square.

    Pieces stand along the projected board normal: away from its vanishing point when that can
    be estimated, else straight up in the image (a photo taken the usual way up).  The squash of
    a square along "up" relative to across it is sin(elevation).
    """
    g = np.linalg.inv(img_to_board)  # board -> image
    hom = np.c_[board_pts, np.ones(len(board_pts))] @ g.T
    w = hom[:, 2:3]
    xy = hom[:, :2] / w
    # Jacobian of board -> image at each point: (G[:2,:2] - x g3[:2]) / w
    jac = (g[None, :2, :2] - xy[:, :, None] * g[None, 2:3, :2]) / w[:, :, None]
    up = np.tile([0.0, -1.0], (len(xy), 1))
    vp = _vertical_vanishing_point(img_to_board, image_shape)
    if vp is not None and abs(vp[2]) > 1e-9 * np.linalg.norm(vp[:2]):
        # a camera that sees the board from above sees the nadir there (a level camera, whose
        # verticals vanish at infinity, sees no board): every piece stands away from it, radially
        # in a top-down view, however the photo is turned
        away = xy - vp[:2] / vp[2]
        length = np.linalg.norm(away, axis=1, keepdims=True)
        defined = length[:, 0] > 1e-6 * float(max(image_shape[:2]))  # at the nadir itself, any way is up
        up[defined] = away[defined] / length[defined]
    right = np.c_[-up[:, 1], up[:, 0]]  # up rotated clockwise on screen
    inv = np.linalg.inv(jac)
    per_px_up = np.linalg.norm(np.einsum("nij,nj->ni", inv, up), axis=1)  # squares per pixel
    per_px_right = np.linalg.norm(np.einsum("nij,nj->ni", inv, right), axis=1)
    ratio = np.clip(per_px_right / per_px_up, 0.0, 1.0)
    return xy, up, ratio, 1.0 / per_px_right


@dataclass(frozen=True)
class CropSpec:
    """How each square is cut out; a model records the spec it was trained with.

    ``plain`` cuts the square's own area from the rectified board (size x size).  ``height_aware``
    cuts an upright box (2*size tall) around the square *and* the space above it up to
    ``height_factor`` square widths, as seen from the camera: tall pieces keep their heads and the
    box leans with the view instead of mixing neighbours.  ``side_factor`` widens outer files,
    whose pieces lean outward under perspective.  ``mirror`` flips files a-d left-right so both
    halves of the board look alike to the classifier.  ``footprint`` is what the box bounds on the
    board: ``square`` the square's four corners as seen (a board turned 45 degrees to the camera
    makes every box 1.4x wider, so the same crop width holds fewer pixels of the piece; models
    before 2026-12-06 were cut so), ``disc`` a disc one square across, which is how a round piece
    stands on it: the same box however the board is turned (docs/correctness.md).
    """

    kind: str = "height_aware"
    size: int = 32
    mirror: bool = True
    height_factor: float = 1.7
    margin: float = 0.1
    side_factor: float = 0.25
    footprint: str = "square"

    def __post_init__(self) -> None:
        if self.kind not in registry.CROP_KINDS:
            raise UserError(f"features.crop must be one of {', '.join(registry.CROP_KINDS)}, got {self.kind!r}")
        if self.footprint not in registry.CROP_FOOTPRINTS:
            raise UserError(f"features.footprint must be one of {', '.join(registry.CROP_FOOTPRINTS)}, "
                            f"got {self.footprint!r}")
        if not isinstance(self.size, int) or not CROP_SIZE_MIN <= self.size <= CROP_SIZE_MAX:
            raise UserError(f"features.size must be an integer in [{CROP_SIZE_MIN}, {CROP_SIZE_MAX}], got {self.size!r}")
        for name, low, high in (("height_factor", 0.0, 5.0), ("margin", 0.0, 1.0), ("side_factor", 0.0, 2.0)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise UserError(f"crop {name} must be in [{low}, {high}], got {value!r}")

    @property
    def output_shape(self) -> tuple[int, int]:
        """(height, width) of one crop."""
        return (self.size, self.size) if self.kind == "plain" else (2 * self.size, self.size)


def square_crops(image: np.ndarray, corners, spec: CropSpec) -> np.ndarray:
    """The 64 square crops (64, 3, H, W) uint8, a1..h8, of an RGB image given its board corners."""
    image = check_rgb(image)
    pts = validate_corners(corners, image.shape)
    if spec.kind == "plain":
        crops = _plain_crops(image, pts, spec.size)
    else:
        crops = _height_aware_crops(image, pts, spec)
    if spec.mirror:
        crops[_FILES < 4] = crops[_FILES < 4, :, ::-1]
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


def _shrink(image: np.ndarray, quads: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The image region covering ``quads``, resized by ``scale`` (<= 1), and the quads mapped into it.

    Downscaling once with area averaging before the per-square warps avoids aliasing when a
    photo's squares are many times larger than the crops.
    """
    height, width = image.shape[:2]
    flat = quads.reshape(-1, 2)
    x0, y0 = np.clip(np.floor(flat.min(0)).astype(int) - 1, 0, None)
    x1 = int(np.clip(np.ceil(flat[:, 0].max()) + 2, 1, width))
    y1 = int(np.clip(np.ceil(flat[:, 1].max()) + 2, 1, height))
    roi = image[y0:y1, x0:x1]
    if scale < 1.0:
        roi = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:
        scale = 1.0
    return roi, (quads - np.array([x0, y0])) * scale


def _plain_crops(image: np.ndarray, pts: np.ndarray, size: int) -> np.ndarray:
    side_px = board_sides(pts).max()
    roi, (roi_pts,) = _shrink(image, pts[None], min(1.0, 1.5 * 8 * size / side_px))
    board = cv2.warpPerspective(roi, board_homography(roi_pts, 8 * size), (8 * size, 8 * size),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # (row, size, file, size, 3) -> square order a1..h8
    tiles = board.reshape(8, size, 8, size, 3).transpose(0, 2, 1, 3, 4)
    return tiles[_ROWS, _FILES].copy()


def height_aware_boxes(corners, spec: CropSpec, image_shape: tuple[int, ...]) -> np.ndarray:
    """Image quads (64, 4, 2) cut for each square: top-left, top-right, bottom-right, bottom-left.

    Each box is upright in the camera's view: its bottom edge is just below the near edge of the
    spec's ``footprint`` on the square, its top is where the head of a piece ``height_factor``
    squares tall would appear, and its sides bound the footprint (widened for outer files).
    """
    pts = np.asarray(corners, dtype=np.float64)
    to_board = board_homography(pts)
    centres = np.c_[_FILES + 0.5, _ROWS + 0.5]
    centre_xy, up, ratio, square_px = _local_frames(to_board, centres, image_shape)
    right = np.c_[-up[:, 1], up[:, 0]]  # up rotated clockwise on screen
    if spec.footprint == "square":
        offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        outline = _project(np.linalg.inv(to_board), (centres[:, None] + offsets).reshape(-1, 2)).reshape(64, 4, 2)
        rel = outline - centre_xy[:, None]
        along_right, along_up = np.einsum("nkd,nd->nk", rel, right), np.einsum("nkd,nd->nk", rel, up)
        right_lo, right_hi = along_right.min(1), along_right.max(1)
        up_lo, up_hi = along_up.min(1), along_up.max(1)
    else:  # a disc one square across, seen locally: half a square either side, squashed by sin(elevation) along up
        right_hi, up_hi = 0.5 * square_px, 0.5 * ratio * square_px
        right_lo, up_lo = -right_hi, -up_hi
    rise = spec.height_factor * square_px * np.sqrt(np.clip(1.0 - ratio ** 2, 0.0, 1.0))
    pad = spec.margin * square_px
    outer = spec.side_factor * square_px * np.abs(_FILES - 3.5) / 3.5
    left = right_lo - pad - outer
    right_edge = right_hi + pad + outer
    bottom = up_lo - pad
    top = up_hi + rise + pad
    corners_rel = np.stack([
        np.c_[left, top], np.c_[right_edge, top], np.c_[right_edge, bottom], np.c_[left, bottom]
    ], axis=1)  # (64, 4, [r, u])
    return centre_xy[:, None] + corners_rel[..., :1] * right[:, None] + corners_rel[..., 1:] * up[:, None]


def _height_aware_crops(image: np.ndarray, pts: np.ndarray, spec: CropSpec) -> np.ndarray:
    boxes = height_aware_boxes(pts, spec, image.shape)
    width_px = np.median(np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1))
    roi, boxes = _shrink(image, boxes, min(1.0, 1.5 * spec.size / max(width_px, 1e-6)))
    out_h, out_w = spec.output_shape
    dst = np.float32([[0, 0], [out_w, 0], [out_w, out_h]])
    crops = np.empty((64, out_h, out_w, 3), dtype=np.uint8)
    for sq in range(64):
        affine = cv2.getAffineTransform(boxes[sq, :3].astype(np.float32), dst)
        cv2.warpAffine(roi, affine, (out_w, out_h), dst=crops[sq], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return crops


def board_mosaic(crops: np.ndarray, unmirror: bool = False, gap: int = 0) -> np.ndarray:
    """One board's 64 crops (64, 3, H, W) tiled as a diagram, rank 8 on top, files a..h left to right.

    Each tile is followed by ``gap`` white pixels right and below.  ``unmirror`` undoes the
    crop spec's flip of files a-d, so that the mosaic reads like the photo.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[:2] != (64, 3):
        raise UserError(f"a board mosaic needs crops of shape (64, 3, H, W), got {crops.shape}")
    _, _, height, width = crops.shape
    tiles = crops.transpose(0, 2, 3, 1)
    if unmirror:
        tiles = tiles.copy()
        tiles[_FILES < 4] = tiles[_FILES < 4, :, ::-1]
    cell_h, cell_w = height + gap, width + gap
    mosaic = np.full((8 * cell_h, 8 * cell_w, 3), 255, dtype=np.uint8)
    for sq in range(64):
        y, x = _ROWS[sq] * cell_h, _FILES[sq] * cell_w
        mosaic[y:y + height, x:x + width] = tiles[sq]
    return mosaic


def crop_contact_sheet(crops_per_board: list[np.ndarray], out_png: Path, titles: list[str] | None = None,
                       gap: int = 2) -> Path:
    """Write a PNG showing each board's 64 crops laid out as a diagram (a8 top-left), boards side by side."""
    if not crops_per_board:
        raise UserError("contact sheet needs at least one board of crops")
    _, _, height, width = crops_per_board[0].shape
    block_w = 8 * (width + gap) + 4 * gap
    title_h = 14 if titles else 0
    sheet = np.full((title_h + 8 * (height + gap), len(crops_per_board) * block_w, 3), 255, dtype=np.uint8)
    for b, crops in enumerate(crops_per_board):
        if crops.shape != (64, 3, height, width):
            raise UserError(f"board {b}: crops must be (64, 3, {height}, {width}), got {crops.shape}")
        mosaic = board_mosaic(crops, gap=gap)
        sheet[title_h:title_h + mosaic.shape[0], b * block_w:b * block_w + mosaic.shape[1]] = mosaic
        if titles:
            cv2.putText(sheet, str(titles[b])[:40], (b * block_w + 2, 11), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1)
    return write_image(out_png, sheet)

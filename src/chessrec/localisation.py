"""Find the four outer corners of the playing area in a photo whose corners nobody clicked.

Classical and model-free, so it works on any board colours the renderer or a user brings:

1. **X-corners**: the inner lattice points of a checkerboard are saddle points of the
   brightness (negative Hessian determinant) with four alternating sectors around them, and
   their polarity (which diagonal is dark) alternates from one lattice point to the next.
2. **Lattice**: from every plausible seed cell, grow a projective lattice (refitting a
   homography from the matched points, outliers dropped) and keep the hypothesis that explains
   the most X-corners.  Pieces hide some corners; the rest still pin down the homography.
3. **Extent**: the lattice is only known up to an integer shift; the 8x8 window is the one
   holding the X-corners whose cells alternate in colour while the ring around it does not.
4. **Refinement**: corners re-measured to sub-pixel in the full-resolution photo, then each
   side snapped to the strongest straight edge within 0.15 squares (the playing area's edge).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from chessrec.errors import UserError
from chessrec.geometry import board_sides, order_corners, validate_corners
from chessrec.imageio import check_rgb
from chessrec.orientation import cell_brightness, checker_log_odds

#: working scales (longest side, pixels), tried in this order; squares come out ~10-80 px, and large
#: photos stay fast.  Chosen on the default profile's validation split (see docs/features.md).
WORK_SIDES = (800, 1000, 640, 1200, 500)
#: two scales agree when every corner of one lies within this fraction of the board size of the other's
AGREEMENT = 0.02
#: stop searching once this many scales agree
AGREEING_SCALES = 3
#: an answer no other scale confirms must show at least this clear a checker pattern
#: (:func:`chessrec.orientation.checker_log_odds`; boards score 20-150, noise that fits a lattice ~15)
MIN_LONE_CHECKER = 30.0
#: how many X-corners the colour-alternation cue may outweigh when choosing the 8x8 window
COLOUR_WEIGHT = 3.0
#: largest ratio between the nearest and farthest cell sizes a photographed board can show
MAX_CELL_RATIO = 4.0
_RING = np.stack([np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                  np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], axis=1)


def locate_board(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Outer corners (4, 2) of the 8x8 playing area in image order (TL, TR, BR, BL of the image).

    The X-corner detector sees squares best at one size, and a photo's board may be any size,
    so the search runs at several working scales (:data:`WORK_SIDES`) and the answer is the
    one most scales agree on (then the one whose lattice explains most X-corners).  It stops
    as soon as :data:`AGREEING_SCALES` scales agree, which on rendered photos takes three on average.

    Raises :class:`UserError` naming ``name`` when no chessboard lattice is found.
    """
    image = check_rgb(image, name)
    found: list[tuple[np.ndarray, int]] = []
    votes: list[int] = []
    for work_side in WORK_SIDES:
        candidate = _locate_at_scale(image, work_side)
        if candidate is not None:
            found.append(candidate)
            votes = [sum(corner_error(a, b) <= AGREEMENT for b, _ in found) for a, _ in found]
            if max(votes) >= AGREEING_SCALES:
                break
    if not found:
        raise UserError(f"no chessboard found in {name}: too few checkerboard corners line up")
    best = max(range(len(found)), key=lambda k: (votes[k], found[k][1]))
    corners = found[best][0]
    if votes[best] < 2 and abs(checker_log_odds(cell_brightness(image, corners))) < MIN_LONE_CHECKER:
        raise UserError(f"no chessboard found in {name}: one scale fitted a lattice, but its squares do not "
                        "alternate like a chessboard")
    return corners


def _locate_at_scale(image: np.ndarray, work_side: int) -> tuple[np.ndarray, int] | None:
    """Corners found with the photo resized to ``work_side`` px, and how many X-corners the board's
    lattice explains; None when no lattice fits or its corners cannot be a board."""
    scale = work_side / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    points, polarity = x_corners(grey)
    lattice = fit_lattice(points, polarity)
    if lattice is None:
        return None
    homography, indices = lattice
    window = _board_window(small, homography, indices)
    support = int(np.all((indices >= window) & (indices <= window + 8), axis=1).sum())
    homography = _refine_at_full_resolution(image, points / scale, indices, homography, scale)
    low, high = _snap_to_edges(image, homography, window, window + 8)
    board = np.array([[low[0], low[1]], [high[0], low[1]], [high[0], high[1]], [low[0], high[1]]])
    corners = cv2.perspectiveTransform(board[None], homography)[0]
    try:
        return validate_corners(order_corners(corners), image.shape), support
    except UserError:
        return None


def x_corners(grey: np.ndarray, max_points: int = 600,
              sigmas: tuple[float, ...] = (1.5, 3.0)) -> tuple[np.ndarray, np.ndarray]:
    """Candidate checkerboard X-corners: positions (N, 2) in pixels and polarity (N,) of +-1.

    Searched at two blur scales: sharp small squares need the fine one, soft (blurred or
    close-up) corners only stand out from noise at the coarse one.  The polarity (the sign of
    the mixed derivative: which diagonal is dark) flips between neighbouring lattice points.
    """
    found, polarity = [], []
    for sigma in sigmas:
        smooth = cv2.GaussianBlur(grey, (0, 0), sigma)
        dxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
        saddle = np.maximum(dxy * dxy - dxx * dyy, 0.0)
        window = np.ones((int(4 * sigma) | 1, int(4 * sigma) | 1), np.uint8)
        peaks = (saddle == cv2.dilate(saddle, window)) & (saddle > 1e-3 * saddle.max() + 1e-6)
        ys, xs = np.nonzero(peaks)
        order = np.argsort(-saddle[ys, xs])[: 4 * max_points]
        pts = np.c_[xs[order], ys[order]].astype(np.float32)
        pts = pts[_alternates_four_times(smooth, pts, radius=2.7 * sigma)][:max_points]
        polarity.append(np.sign(dxy[pts[:, 1].astype(int), pts[:, 0].astype(int)]))
        if len(pts):
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.05)
            half = max(3, int(2 * sigma))
            pts = cv2.cornerSubPix(smooth, pts.reshape(-1, 1, 2).copy(), (half, half), (-1, -1), criteria)
            found.append(pts.reshape(-1, 2))
    if not found:
        return np.zeros((0, 2), np.float32), np.zeros(0)
    pts, sign = np.concatenate(found), np.concatenate(polarity)
    # the same corner found at both scales: keep the first (finer) one
    pairs = cKDTree(pts).query_pairs(3.0, output_type="ndarray")
    drop = np.zeros(len(pts), dtype=bool)
    drop[pairs.max(axis=1)] = True
    return pts[~drop], sign[~drop]


def _alternates_four_times(smooth: np.ndarray, pts: np.ndarray, radius: float) -> np.ndarray:
    """True where a ring around the point crosses its mean brightness exactly four times (an X)."""
    if not len(pts):
        return np.zeros(0, dtype=bool)
    ring = pts[:, None, :] + radius * _RING[None]
    values = cv2.remap(smooth, ring[..., 0].astype(np.float32), ring[..., 1].astype(np.float32), cv2.INTER_LINEAR)
    centred = values - values.mean(axis=1, keepdims=True)
    signs = centred > 0
    crossings = (signs != np.roll(signs, 1, axis=1)).sum(axis=1)
    contrast = np.abs(centred).mean(axis=1)
    return (crossings == 4) & (contrast > 6.0)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    h, _ = cv2.findHomography(src.astype(np.float64), dst.astype(np.float64), 0)
    return h if h is not None and np.all(np.isfinite(h)) else None


def _robust_homography(cells: np.ndarray, pts: np.ndarray, floor_px: float) -> np.ndarray | None:
    """Least squares, then again without points far off the fit: pieces standing near a lattice
    point can pass for it and would bend the extrapolated outer corners.  Deterministic, unlike
    RANSAC, so the same photo always gives the same corners."""
    h = _homography(cells, pts)
    for _ in range(3):
        if h is None:
            return None
        residual = np.linalg.norm(cv2.perspectiveTransform(cells[None].astype(np.float64), h)[0] - pts, axis=1)
        keep = residual <= max(floor_px, 3.0 * float(np.median(residual)))
        if keep.all() or keep.sum() < 8:
            return h
        cells, pts = cells[keep], pts[keep]
        h = _homography(cells, pts)
    return h


def fit_lattice(points: np.ndarray, polarity: np.ndarray, min_support: int = 12):
    """Best projective lattice through ``points``: (lattice -> image homography, matched (i, j) per point).

    ``indices`` is (N, 2) int with -9999 for points that are not on the lattice.  Every point
    with two roughly perpendicular neighbours is tried as a seed, but only grown when the
    cell it spans predicts most of its 3x3 neighbourhood; points already on the best lattice
    are not tried again.  A lattice point's polarity must alternate like the checker pattern,
    which rules out lattices of half the board's period.
    """
    if len(points) < min_support:
        return None
    tree = cKDTree(points)
    _, near = tree.query(points, k=min(7, len(points)))
    grid = np.stack(np.meshgrid(np.arange(-10, 11), np.arange(-10, 11), indexing="ij"), -1).reshape(-1, 2)
    best, best_support = None, min_support - 1
    covered = np.zeros(len(points), dtype=bool)
    for seed in range(len(points)):
        if covered[seed]:
            continue
        for a, b in _cell_candidates(points, polarity, tree, seed, near[seed]):
            hypothesis = _grow(points, polarity, tree, grid, seed, a, b)
            if hypothesis is not None and hypothesis[2] > best_support:
                best, best_support = hypothesis[:2], hypothesis[2]
                covered = best[1][:, 0] > -9999
            if hypothesis is not None:
                break
    return best


def _cell_candidates(points, polarity, tree, seed, neighbours):
    """Neighbour pairs (a, b) of ``seed`` spanning a lattice cell whose 3x3 neighbourhood is present."""
    origin = points[seed]
    others = [n for n in neighbours[1:]
              if np.linalg.norm(points[n] - origin) > 3.0 and polarity[n] == -polarity[seed]]
    offsets = np.array([[u, v] for u in (-1, 0, 1) for v in (-1, 0, 1)], dtype=np.float64)
    for k, a in enumerate(others[:3]):
        step_a = points[a] - origin
        for b in others[k + 1:]:
            step_b = points[b] - origin
            ratio = np.linalg.norm(step_b) / np.linalg.norm(step_a)
            cos = step_a @ step_b / (np.linalg.norm(step_a) * np.linalg.norm(step_b))
            if abs(cos) > 0.5 or not 0.5 < ratio < 2.0:
                continue
            predicted = origin + offsets @ np.stack([step_a, step_b])
            dist, _ = tree.query(predicted)
            tolerance = 0.2 * min(np.linalg.norm(step_a), np.linalg.norm(step_b))
            if np.sum(dist < tolerance) >= 6:
                yield a, b


def _grow(points, polarity, tree, grid, seed, a, b):
    """Grow a lattice from the cell spanned by ``seed`` and its neighbours ``a`` and ``b``."""
    origin = points[seed]
    step_a, step_b = points[a] - origin, points[b] - origin
    src = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    dst = np.array([origin, origin + step_a, origin + step_b, origin + step_a + step_b])
    h = _homography(src, dst)
    radius = 1
    matched_idx = matched_pts = None
    for _ in range(12):
        if h is None:
            return None
        cells = grid[(np.abs(grid) <= radius).all(axis=1)]
        predicted = cv2.perspectiveTransform(cells[None].astype(np.float64), h)[0]
        if not np.all(np.isfinite(predicted)):
            return None
        # tolerance: a quarter of the local cell size at each predicted point
        step_i = cv2.perspectiveTransform((cells + [1, 0])[None].astype(np.float64), h)[0] - predicted
        step_j = cv2.perspectiveTransform((cells + [0, 1])[None].astype(np.float64), h)[0] - predicted
        tolerance = 0.25 * np.minimum(np.linalg.norm(step_i, axis=1), np.linalg.norm(step_j, axis=1))
        dist, idx = tree.query(predicted, distance_upper_bound=float(tolerance.max()) + 1e-6)
        ok = (dist <= tolerance) & (idx < len(points))
        expected = polarity[seed] * np.where(cells.sum(axis=1) % 2 == 0, 1.0, -1.0)
        ok &= polarity[np.minimum(idx, len(points) - 1)] == expected
        # one point, one lattice cell: keep the closest claim
        order = np.argsort(dist[ok])
        _, first = np.unique(idx[ok][order], return_index=True)
        keep = np.flatnonzero(ok)[order][first]
        if len(keep) < 4:
            return None
        matched_size = tolerance[keep]
        if matched_size.min() * MAX_CELL_RATIO < matched_size.max():
            return None  # a lattice folding into its vanishing line is not a photographed board
        matched_idx, matched_pts = cells[keep], points[idx[keep]]
        h = _robust_homography(matched_idx, matched_pts, 1.0)
        if radius >= 10:
            break
        radius += 2
    matched_idx, matched_pts = _within_one_board(matched_idx, matched_pts)
    h = _robust_homography(matched_idx, matched_pts, 1.0) if len(matched_idx) >= 4 else None
    if h is None:
        return None
    indices = np.full((len(points), 2), -9999, dtype=np.int64)
    distance, nearest = tree.query(matched_pts)
    indices[nearest[distance < 1e-6]] = matched_idx[distance < 1e-6]
    return h, indices, len(matched_idx)


def _within_one_board(cells: np.ndarray, pts: np.ndarray):
    """Keep the matches inside the 9x9 block of lattice points holding most of them.

    Far extrapolations of the lattice can pick up stray corners on the table; a chessboard
    has only 9 lattice lines each way.
    """
    low, high = cells.min(axis=0), cells.max(axis=0)
    best, best_count = None, -1
    for i0 in range(low[0], max(low[0], high[0] - 8) + 1):
        for j0 in range(low[1], max(low[1], high[1] - 8) + 1):
            inside = np.all((cells >= [i0, j0]) & (cells <= [i0 + 8, j0 + 8]), axis=1)
            if inside.sum() > best_count:
                best, best_count = inside, int(inside.sum())
    return cells[best], pts[best]


def _refine_at_full_resolution(image: np.ndarray, points: np.ndarray, indices: np.ndarray,
                               lattice_to_small: np.ndarray, scale: float) -> np.ndarray:
    """Lattice -> full-image homography from the matched X-corners, each refined to sub-pixel
    accuracy in the full-resolution photo; the board's outer corners are extrapolated one cell
    beyond them, so small errors here matter."""
    on = indices[:, 0] > -9999
    cells, pts = indices[on].astype(np.float64), points[on].astype(np.float32)
    to_full = np.diag([1 / scale, 1 / scale, 1.0]) @ lattice_to_small
    step = cv2.perspectiveTransform((cells + [0.5, 0.5])[None], to_full)[0] - \
        cv2.perspectiveTransform(cells[None], to_full)[0]
    cell_px = float(np.median(np.linalg.norm(step, axis=1))) / np.sqrt(2)
    if scale < 1.0:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        half = int(np.clip(0.15 * cell_px, 2, 30))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.05)
        refined = cv2.cornerSubPix(grey, pts.reshape(-1, 1, 2).copy(), (half, half), (-1, -1), criteria)
        refined = refined.reshape(-1, 2)
        stable = np.linalg.norm(refined - pts, axis=1) < 0.2 * cell_px
        cells, pts = cells[stable], refined[stable]
    if len(cells) < 8:
        return to_full
    h = _robust_homography(cells, pts.astype(np.float64), 0.03 * cell_px)
    return to_full if h is None else h


def _snap_to_edges(image: np.ndarray, lattice_to_image: np.ndarray, low: np.ndarray, high: np.ndarray,
                   reach: float = 0.15, px: int = 40):
    """Move each side of the board (lattice units) to the strongest colour edge within ``reach``.

    The lattice is extrapolated one cell past the last inner corners; the real boundary of the
    playing area (often a printed line) is a long straight edge that pins it down.
    """
    side = (high - low) * px
    margin = int(np.ceil(reach * px)) + 2
    shift = np.array([[px, 0, -low[0] * px + margin], [0, px, -low[1] * px + margin], [0, 0, 1]], float)
    warp = shift @ np.linalg.inv(lattice_to_image)
    size = (int(side[0]) + 2 * margin, int(side[1]) + 2 * margin)
    lab = cv2.cvtColor(cv2.warpPerspective(image, warp, size, flags=cv2.INTER_LINEAR), cv2.COLOR_RGB2LAB)
    lab = lab.astype(np.float32)
    offsets = np.arange(-margin + 1, margin)
    band = slice(margin + px // 2, -margin - px // 2)  # skip the corners' neighbourhood

    def best_offset(profile_rows: np.ndarray, edge: int) -> float:
        # profile_rows: (positions across the edge, along the edge, 3): edge strength between
        # offsets k and k+1, averaged along the edge so light and dark squares both count
        strength = np.linalg.norm(np.diff(profile_rows, axis=0), axis=2).mean(axis=1)
        window = strength[edge + offsets[0] - 1: edge + offsets[-1]]
        return (int(np.argmax(window)) + offsets[0] - 0.5) / px

    top, bottom = margin, margin + int(side[1])
    left, right = margin, margin + int(side[0])
    d_top = best_offset(lab[:, band], top)
    d_bottom = best_offset(lab[:, band], bottom)
    d_left = best_offset(lab[band, :].transpose(1, 0, 2), left)
    d_right = best_offset(lab[band, :].transpose(1, 0, 2), right)
    return low + [d_left, d_top], high + [d_right, d_bottom]


def _board_window(image: np.ndarray, lattice_to_image: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Lattice index of the a8-side corner of the 8x8 window of cells that holds the X-corners and
    alternates in colour while the ring of cells around it does not (the border and table around
    a board have no checker pattern)."""
    on = indices[:, 0] > -9999
    low, high = indices[on].min(axis=0), indices[on].max(axis=0)
    cell_px = 16
    # candidate windows overlap the matched corners but may leave out a stray lattice line at
    # either end; one more cell all round holds the ring around each candidate
    origin = high - 10
    extent = 20 - (high - low)
    size = extent * cell_px
    shift = np.array([[cell_px, 0, -origin[0] * cell_px], [0, cell_px, -origin[1] * cell_px], [0, 0, 1]], float)
    to_cells = shift @ np.linalg.inv(lattice_to_image)
    warped = cv2.warpPerspective(image, to_cells, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    lab = cv2.cvtColor(warped, cv2.COLOR_RGB2LAB).astype(np.float32)
    n_i, n_j = int(extent[0]), int(extent[1])
    blocks = lab.reshape(n_j, cell_px, n_i, cell_px, 3)[:, 4:-4, :, 4:-4].transpose(0, 2, 1, 3, 4)
    cells = np.median(blocks.reshape(n_j, n_i, -1, 3), axis=2)  # (j, i, Lab)
    parity = np.where((np.add.outer(np.arange(n_j), np.arange(n_i)) % 2) == 0, 1.0, -1.0)
    signed = cells * parity[..., None]
    lattice = indices[on] - origin
    windows, colour, support = [], [], []
    for j0 in range(1, n_j - 8):
        for i0 in range(1, n_i - 8):
            inside = signed[j0:j0 + 8, i0:i0 + 8].reshape(-1, 3).mean(axis=0)
            ring = np.concatenate([signed[j0 - 1, i0 - 1:i0 + 9], signed[j0 + 8, i0 - 1:i0 + 9],
                                   signed[j0:j0 + 8, i0 - 1], signed[j0:j0 + 8, i0 + 8]]).mean(axis=0)
            windows.append((i0, j0))
            colour.append(np.linalg.norm(inside) - np.linalg.norm(ring))
            # X-corners can only be inner lattice points of the board
            support.append(np.sum(np.all((lattice > [i0, j0]) & (lattice < [i0 + 8, j0 + 8]), axis=1)))
    colour = np.asarray(colour)
    score = np.asarray(support) + COLOUR_WEIGHT * colour / max(np.abs(colour).max(), 1e-6)
    best = windows[int(np.argmax(score))]
    return np.asarray(best, dtype=np.float64) + origin


def corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest corner distance over the mean side of the annotated quad, corners matched as a set.

    Both quads are sorted clockwise and the best of the four cyclic pairings is kept: sorting
    alone can start the two at different corners when a board stands as a diamond.
    """
    truth = order_corners(truth, a1="bottom-left")
    found = order_corners(found, a1="bottom-left")
    side = board_sides(truth).mean()
    return min(float(np.linalg.norm(np.roll(found, k, axis=0) - truth, axis=1).max()) for k in range(4)) / side

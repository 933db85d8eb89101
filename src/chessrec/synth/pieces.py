"""Low-poly 3D chess pieces in several styles, built once per process.

Units are board squares (a square is 1 x 1, z points up, a piece stands on z = 0 centred at
the origin).  Pawn, rook, bishop, queen and king are surfaces of revolution of a profile
``[(radius, z), ...]``; the knight is a revolved base carrying an extruded head silhouette,
so it has a facing direction like a real knight.  Heights follow a real tournament set
(king ~1.6 squares tall), which is what makes oblique photos hard: tall pieces hide the
squares behind them and spill into their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import chess
import numpy as np

from chessrec import registry

STYLES: tuple[str, ...] = registry.PIECE_STYLES
SEGMENTS = 16  # facets around a surface of revolution


@dataclass(frozen=True)
class Mesh:
    """Quads (degenerate ones are triangles) and planar polygons, each with an outward normal."""

    vertices: np.ndarray  # (V, 3) float64
    quads: np.ndarray  # (F, 4) int vertex indices
    quad_normals: np.ndarray  # (F, 3) unit outward normals
    polygons: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # (vertex indices, normal); may be concave


def _merge(*meshes: Mesh) -> Mesh:
    verts, quads, normals, polys, offset = [], [], [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        quads.append(m.quads + offset)
        normals.append(m.quad_normals)
        polys.extend((idx + offset, n) for idx, n in m.polygons)
        offset += len(m.vertices)
    return Mesh(np.concatenate(verts), np.concatenate(quads), np.concatenate(normals), tuple(polys))


def revolve(profile: list[tuple[float, float]], segments: int = SEGMENTS) -> Mesh:
    """Surface of revolution of ``profile`` (bottom to top); a final radius 0 closes the top."""
    prof = np.asarray(profile, dtype=np.float64)
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    r, z = prof[:, 0:1], prof[:, 1:2]
    verts = np.stack([r * np.cos(theta), r * np.sin(theta), np.broadcast_to(z, (len(prof), segments))],
                     axis=-1).reshape(-1, 3)
    ring = np.arange(len(prof) - 1)[:, None] * segments
    j = np.arange(segments)[None, :]
    j1 = (j + 1) % segments
    quads = np.stack([ring + j, ring + j1, ring + segments + j1, ring + segments + j], axis=-1).reshape(-1, 4)
    v = verts[quads]
    normals = np.cross(v[:, 2] - v[:, 0], v[:, 3] - v[:, 1])
    length = np.linalg.norm(normals, axis=1)
    keep = length > 1e-12  # drop zero-area quads (flat rings of radius 0)
    return Mesh(verts, quads[keep], normals[keep] / length[keep, None])


def box(centre: tuple[float, float, float], size: tuple[float, float, float]) -> Mesh:
    """An axis-aligned box without its bottom face."""
    c, h = np.asarray(centre, float), np.asarray(size, float) / 2
    corners = np.array([[sx, sy, sz] for sz in (-1, 1) for sy in (-1, 1) for sx in (-1, 1)], float)
    verts = c + corners * h
    quads = np.array([[4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]])
    normals = np.array([[0, 0, 1], [0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0]], float)
    return Mesh(verts, quads, normals)


def extrude(outline: list[tuple[float, float]], thickness: float) -> Mesh:
    """A slab from a counter-clockwise outline in the (forward, up) plane, ``thickness`` wide."""
    pts = np.asarray(outline, dtype=np.float64)
    n = len(pts)
    t = thickness / 2
    # forward = +x, width = y, up = z
    left = np.column_stack([pts[:, 0], np.full(n, t), pts[:, 1]])
    right = np.column_stack([pts[:, 0], np.full(n, -t), pts[:, 1]])
    verts = np.concatenate([left, right])
    k = np.arange(n)
    k1 = (k + 1) % n
    quads = np.stack([k, k1, n + k1, n + k], axis=-1)
    edge = pts[k1] - pts[k]
    normals = np.column_stack([edge[:, 1], np.zeros(n), -edge[:, 0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    polys = ((k.copy(), np.array([0.0, 1.0, 0.0])), (n + k, np.array([0.0, -1.0, 0.0])))
    return Mesh(verts, quads, normals, polys)


def _arc(cz: float, rad: float, start_deg: float, squash: float = 1.0, steps: int = 5) -> list:
    """Profile points of a sphere (or ellipsoid) from ``start_deg`` below the equator to its top."""
    phi = np.radians(np.linspace(start_deg, 180.0, steps))
    return [(rad * np.sin(p), cz - rad * squash * np.cos(p)) for p in phi]


def _base(r: float, h: float) -> list:
    return [(r, 0.0), (r, 0.3 * h), (0.9 * r, 0.5 * h), (0.93 * r, 0.7 * h), (0.75 * r, h)]


def _staunton(piece: int, w: float, hs: float) -> Mesh:
    """Classic Staunton shapes; ``w`` scales radii and ``hs`` heights (the club style is squatter)."""
    def prof(points):
        return revolve([(r * w, z * hs) for r, z in points])

    if piece == chess.PAWN:
        return prof(_base(0.27, 0.14) + [(0.14, 0.22), (0.09, 0.42), (0.16, 0.45), (0.16, 0.48),
                                          (0.08, 0.51)] + _arc(0.66, 0.155, 30))
    if piece == chess.ROOK:
        rook = prof(_base(0.3, 0.15) + [(0.2, 0.25), (0.16, 0.58), (0.2, 0.66), (0.24, 0.7),
                                        (0.24, 0.9), (0.17, 0.9), (0.17, 0.84), (0.0, 0.84)])
        merlons = [box((0.2 * w * np.cos(a), 0.2 * w * np.sin(a), 0.93 * hs), (0.09 * w, 0.09 * w, 0.07 * hs))
                   for a in np.radians([0, 72, 144, 216, 288])]
        return _merge(rook, *merlons)
    if piece == chess.BISHOP:
        return prof(_base(0.28, 0.15) + [(0.16, 0.25), (0.1, 0.62), (0.19, 0.66), (0.19, 0.7), (0.11, 0.73),
                                          (0.13, 0.78), (0.155, 0.86), (0.15, 0.93), (0.12, 1.0), (0.07, 1.06),
                                          (0.035, 1.08)] + _arc(1.13, 0.055, 20, steps=4))
    if piece == chess.QUEEN:
        return prof(_base(0.31, 0.16) + [(0.18, 0.28), (0.1, 0.85), (0.2, 0.9), (0.2, 0.94), (0.11, 0.97),
                                          (0.13, 1.05), (0.21, 1.24), (0.2, 1.28), (0.12, 1.28), (0.08, 1.34),
                                          (0.04, 1.36)] + _arc(1.4, 0.055, 20, steps=4))
    if piece == chess.KING:
        body = prof(_base(0.32, 0.16) + [(0.19, 0.3), (0.11, 0.9), (0.21, 0.95), (0.21, 0.99), (0.12, 1.02),
                                          (0.14, 1.1), (0.2, 1.26), (0.18, 1.3), (0.1, 1.33), (0.05, 1.36),
                                          (0.0, 1.37)])
        cross = [box((0, 0, 1.48 * hs), (0.06 * w, 0.06 * w, 0.24 * hs)),
                 box((0, 0, 1.5 * hs), (0.18 * w, 0.06 * w, 0.06 * hs))]
        return _merge(body, *cross)
    return _knight(w, hs, _KNIGHT_HEAD, 0.24)


#: knight head silhouette (forward, up), counter-clockwise, facing +forward.
_KNIGHT_HEAD = [(-0.22, 0.22), (0.18, 0.22), (0.15, 0.4), (0.1, 0.53), (0.22, 0.62), (0.33, 0.68),
                (0.37, 0.76), (0.31, 0.86), (0.13, 0.98), (0.09, 1.08), (0.03, 1.14), (-0.03, 1.06),
                (-0.14, 1.0), (-0.22, 0.85), (-0.25, 0.6), (-0.24, 0.4)]
_KNIGHT_BLOCK = [(-0.2, 0.2), (0.16, 0.2), (0.14, 0.55), (0.34, 0.62), (0.34, 0.8), (0.08, 0.95),
                 (0.02, 1.05), (-0.06, 0.95), (-0.2, 0.8)]


def _knight(w: float, hs: float, outline: list, thickness: float) -> Mesh:
    base = revolve([(r * w, z * hs) for r, z in _base(0.29, 0.15) + [(0.24, 0.24), (0.0, 0.24)]])
    head = extrude([(u * w, z * hs) for u, z in outline], thickness * w)
    return _merge(base, head)


def _modern(piece: int) -> Mesh:
    """A minimalist set: cylinders, cones and balls (a different silhouette family)."""
    if piece == chess.PAWN:
        return revolve([(0.25, 0), (0.25, 0.08), (0.12, 0.12), (0.08, 0.45)] + _arc(0.6, 0.14, 35))
    if piece == chess.ROOK:
        return revolve([(0.27, 0), (0.27, 0.08), (0.2, 0.1), (0.2, 0.82), (0.14, 0.82), (0.14, 0.76), (0, 0.76)])
    if piece == chess.BISHOP:
        return revolve([(0.26, 0), (0.26, 0.08), (0.15, 0.12), (0.07, 0.8), (0.13, 0.86), (0.14, 0.95),
                         (0.09, 1.06)] + _arc(1.12, 0.06, 20, steps=3))
    if piece == chess.QUEEN:
        return revolve([(0.28, 0), (0.28, 0.08), (0.16, 0.12), (0.08, 1.0), (0.22, 1.22), (0.14, 1.24),
                        (0.07, 1.28)] + _arc(1.34, 0.07, 20, steps=3))
    if piece == chess.KING:
        body = revolve([(0.29, 0), (0.29, 0.08), (0.17, 0.12), (0.13, 1.2), (0.17, 1.24), (0.17, 1.3), (0, 1.3)])
        return _merge(body, box((0, 0, 1.42), (0.2, 0.2, 0.24)))
    return _knight(0.95, 1.0, _KNIGHT_BLOCK, 0.3)


def widened(mesh: Mesh, w: float) -> Mesh:
    """``mesh`` widened by ``w``, heights kept (normals are kept as they were: fine for shading)."""
    if w == 1.0:
        return mesh
    return Mesh(mesh.vertices * np.array([w, w, 1.0]), mesh.quads, mesh.quad_normals, mesh.polygons)


@lru_cache(maxsize=None)
def piece_mesh(style: str, piece_type: int) -> Mesh:
    """The mesh of one piece type (python-chess ``piece_type``) in one style."""
    if style == "staunton":
        return _staunton(piece_type, 1.15, 1.0)
    if style == "club":
        return _staunton(piece_type, 1.28, 0.88)
    if style == "modern":
        return widened(_modern(piece_type), 1.15)
    raise ValueError(f"unknown piece style {style!r}; choose from {STYLES}")

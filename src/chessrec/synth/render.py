"""Photo-like renders of a physical chess set: a numpy + OpenCV software rasteriser.

World units are board squares: the playing area spans x (files a..h) and y (ranks 1..8)
from 0 to 8 on the plane z = 0, z points up.  A pinhole camera looks at the board from a
random elevation (35-90 degrees), any azimuth (so a1 may land in any image corner),
distance, focal length and a slight roll.  Drawing is back to front (painter's algorithm):
background, table, board (a procedurally textured plane warped by its homography), soft
shadows, then every 3D object far to near with its faces sorted by depth and Lambert +
specular shaded; in about a third of the photos the photographer's soft shadow falls over the
near side.  Last come the sensor effects: white balance and exposure, vignetting, blur and
noise (JPEG compression is applied when the image is saved).

Randomness comes only from ``rng_seed``: the scene (camera, light, board, set, clutter,
sensor) is drawn before and independently of the position, so the same seed photographs
different positions from the same viewpoint, and the same seed and labels give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import chess
import cv2
import numpy as np

from chessrec import registry
from chessrec.geometry import MIN_BOARD_SIDE_PX, board_sides
from chessrec.labels import EMPTY, piece_of_class
from chessrec.synth.pieces import STYLES, Mesh, box, piece_mesh, revolve, widened

#: the a8, h8, h1 and a1 corners of the playing area (CORNER_NAMES order), world coordinates.
BOARD_CORNERS = np.array([[0, 8, 0], [8, 8, 0], [8, 0, 0], [0, 0, 0]], dtype=np.float64)
_SUB = 16  # fixed-point factor for sub-pixel polygon drawing (cv2 ``shift=4``)

BOARD_PALETTES = {  # light square, dark square (RGB)
    "green-mat": ((232, 230, 205), (40, 112, 82)),
    "vinyl-tournament": ((224, 204, 170), (36, 78, 62)),  # the common buff / dark-green roll-up mat
    "brown-wood": ((222, 184, 135), (139, 90, 43)),
    "maple-walnut": ((240, 217, 181), (181, 136, 99)),
    "grey": ((222, 222, 218), (120, 122, 125)),
    "blue": ((226, 232, 236), (72, 102, 142)),
    "black-white": ((236, 236, 226), (44, 44, 44)),
    "red-buff": ((236, 220, 190), (152, 56, 44)),
}
WHITE_MATERIALS = {"ivory": (236, 228, 204), "cream": (246, 240, 226), "boxwood": (226, 190, 140),
                   "white-plastic": (238, 238, 236)}
BLACK_MATERIALS = {"black-plastic": (30, 30, 32), "ebony": (46, 40, 38), "rosewood": (96, 54, 32),
                   "dark-brown": (70, 46, 32)}
#: piece colours no random render draws, for sets to adapt to (``ChessSet.pieces``):
#: name -> ((white side's material, RGB), (black side's material, RGB))
HELD_OUT_PIECES = {"red-cream": (("cream", (236, 214, 150)), ("red", (158, 30, 28))),
                   "blue-white": (("white", (240, 240, 238)), ("blue", (36, 64, 150)))}
#: pieces' widths relative to their style's meshes (see :data:`chessrec.registry.GIRTH_RANGE`)
GIRTH_RANGE = registry.GIRTH_RANGE


assert tuple(BOARD_PALETTES) == registry.BOARD_PALETTES and tuple(HELD_OUT_PIECES) == registry.HELD_OUT_PIECES


@dataclass(frozen=True)
class ChessSet:
    """One physical set photographed again and again: piece style, piece colours, board palette.

    ``None`` keeps a field random as in training; ``pieces`` names a :data:`HELD_OUT_PIECES`
    pair, colours no random render uses.  The random draws that a field replaces are still made,
    so the camera, the light and the pieces' placement of a seed stay the same whatever the set;
    a fixed ``board`` palette can change the draws that follow the board's texture (table,
    clutter, photographer's shadow, sensor noise), since wooden and plain boards draw differently.
    ``girth`` scales the pieces' widths (heights kept); random in :data:`GIRTH_RANGE` unless given,
    from a stream of its own, so the rest of a seed's render does not move with it.
    """

    style: str | None = None
    pieces: str | None = None
    board: str | None = None
    girth: float | None = None

    def __post_init__(self) -> None:
        for value, choices, what in ((self.style, STYLES, "piece style"), (self.pieces, HELD_OUT_PIECES, "pieces"),
                                     (self.board, BOARD_PALETTES, "board")):
            if value is not None and value not in choices:
                raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
        if self.girth is not None and not GIRTH_RANGE[0] <= self.girth <= GIRTH_RANGE[1]:
            raise ValueError(f"girth {self.girth} outside {GIRTH_RANGE}")


@dataclass(frozen=True)
class RenderedBoard:
    """One render: the photo, its exact board corners and camera, and per-pixel ownership.

    ``square_ids`` holds, for each pixel, the square index (a1 = 0 .. h8 = 63) of the piece or
    board square seen there, or -1 (background, table, board border, clutter);
    ``piece_mask`` is True where that owner is a piece rather than the board surface.
    """

    image: np.ndarray  # (S, S, 3) uint8 RGB
    corners: np.ndarray  # (4, 2) float64, CORNER_NAMES order
    camera: dict
    square_ids: np.ndarray  # (S, S) int16
    piece_mask: np.ndarray  # (S, S) bool


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # (3, 3) world -> camera (x right, y down, z forward)
    position: np.ndarray  # (3,)
    focal: float
    cx: float
    cy: float

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel (x, y) of world points in front of the camera."""
        pc = self.to_camera(points)
        z = pc[..., 2:3]
        return pc[..., :2] / z * self.focal + np.array([self.cx, self.cy])

    @property
    def matrix(self) -> np.ndarray:
        """The 3 x 4 projection matrix K [R | -R C]."""
        k = np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1]])
        return k @ np.column_stack([self.rotation, -self.rotation @ self.position])

    def plane_homography(self) -> np.ndarray:
        """Homography from world (x, y) on z = 0 to pixels."""
        m = self.matrix
        return m[:, [0, 1, 3]]


def look_at(elevation_deg: float, azimuth_deg: float, distance: float, roll_deg: float,
            target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and position of a camera ``distance`` from ``target``; image up points away from it.

    The horizontal right vector comes from the azimuth, so straight top-down views (90 degrees)
    stay well defined.
    """
    e, a, r = np.radians([elevation_deg, azimuth_deg, roll_deg])
    position = target + distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    forward = (target - position) / distance
    right = np.array([-np.sin(a), np.cos(a), 0.0])
    right = right - forward * (forward @ right)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    right, down = np.cos(r) * right + np.sin(r) * down, -np.sin(r) * right + np.cos(r) * down
    return np.stack([right, down, forward]), position


def _turn_towards(aim: np.ndarray) -> np.ndarray:
    """The camera-frame rotation that turns the optical axis onto the ray through ``aim`` (x/z, y/z)."""
    ray = np.array([aim[0], aim[1], 1.0]) / np.sqrt(1.0 + aim @ aim)
    axis = np.cross(ray, [0.0, 0.0, 1.0])
    sin = np.linalg.norm(axis)
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * cross + (1.0 - ray[2]) * cross @ cross  # Rodrigues: ray -> optical axis


def _sample_camera(rng: np.random.Generator, size: int, border: float) -> tuple[Camera, dict]:
    """A random viewpoint whose frame holds the whole board (and most of the tallest pieces).

    Views that would show the board too small to read (see :data:`MIN_BOARD_SIDE_PX`) are
    drawn again; this only matters for small images.
    """
    for _ in range(100):
        camera, info = _draw_camera(rng, size, border)
        corners = camera.project(BOARD_CORNERS)
        if board_sides(corners).min() >= 1.05 * MIN_BOARD_SIDE_PX:
            break
    return camera, info


def _draw_camera(rng: np.random.Generator, size: int, border: float) -> tuple[Camera, dict]:
    elevation = float(rng.uniform(35.0, 90.0))
    azimuth = float(rng.uniform(0.0, 360.0))
    distance = float(rng.uniform(11.0, 28.0))
    roll = float(np.clip(rng.normal(0.0, 3.0), -8.0, 8.0))
    target = np.array([4.0, 4.0, 0.0]) + np.append(rng.normal(0.0, 0.35, 2), 0.0)
    rotation, position = look_at(elevation, azimuth, distance, roll, target)
    outer = np.array([[-border, -border, 0], [8 + border, -border, 0], [8 + border, 8 + border, 0],
                      [-border, 8 + border, 0]])
    frame = np.concatenate([outer, BOARD_CORNERS + np.array([0.0, 0.0, 1.0])])

    def view(rot: np.ndarray) -> np.ndarray:  # normalised image coordinates of what must be in frame
        pc = (frame - position) @ rot.T
        return pc[:, :2] / pc[:, 2:3]

    # A photographer turns the camera to frame the board: the principal point stays at the image
    # centre, as in every uncropped photo (the crops' vertical is estimated under that assumption).
    xy = view(rotation)
    rotation = _turn_towards((xy.min(axis=0) + xy.max(axis=0)) / 2) @ rotation  # board in the middle
    xy = view(rotation)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    fill = float(rng.uniform(0.5, 0.92))
    focal = fill * size / float((hi - lo).max())
    slack = (size - focal * (hi - lo)) / 2  # pixels to spare on each side
    rotation = _turn_towards((lo + hi) / 2 + rng.uniform(-0.8, 0.8, 2) * slack / focal) @ rotation
    focal = min(focal, 0.999 * (size / 2) / float(np.abs(view(rotation)).max()))  # turning may bend it out
    camera = Camera(rotation, position, focal, size / 2, size / 2)
    info = {"elevation_deg": elevation, "azimuth_deg": azimuth, "distance": distance, "roll_deg": roll,
            "focal_px": focal, "principal_point": [camera.cx, camera.cy], "image_size": size}
    return camera, info


# --------------------------------------------------------------------------- textures

def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled (cheap and blur-free of artefacts)."""
    small = rng.random(cells).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _grain(rng: np.random.Generator, h: int, w: int, contrast: float) -> np.ndarray:
    """Wood grain as a brightness factor: stretched noise bent into ring-like stripes along x.

    Computed at half resolution (grain is smooth) and scaled up.
    """
    hh, hw = max(2, h // 2), max(2, w // 2)
    yy = np.arange(hh, dtype=np.float32)[:, None] / hh
    warp = _smooth_noise(rng, hh, hw, (6, 3)) * 3.0 + _smooth_noise(rng, hh, hw, (40, 4)) * 0.4
    period = rng.uniform(0.03, 0.08)
    rings = np.sin(2 * np.pi * (yy / period + warp)) * 0.5 + 0.5
    fine = _smooth_noise(rng, hh, hw, (max(2, hh // 2), 6))
    shade = 1.0 - contrast * (0.6 * rings ** 3 + 0.4 * fine)
    return cv2.resize(shade, (w, h), interpolation=cv2.INTER_LINEAR)


def _board_texture(rng: np.random.Generator, px: int, border: float, palette: str | None = None) -> tuple[np.ndarray, str]:
    """Top-down board picture (rank 8 at the top, border included) and its palette name (random unless given)."""
    name = list(BOARD_PALETTES)[int(rng.integers(len(BOARD_PALETTES)))]
    name = palette or name
    light, dark = (np.clip(np.asarray(c) + rng.normal(0, 8, 3), 0, 255) for c in BOARD_PALETTES[name])
    wooden = "wood" in name or "walnut" in name
    border_colour = dark * 0.75 if wooden else (light if rng.random() < 0.7 else dark)
    b = int(round(border * px))
    side = 8 * px + 2 * b
    # colour of every square, framed by the border colour; a1 (bottom-left) is dark
    rank_from_top, file = np.mgrid[0:8, 0:8]
    cells = np.where(((file + 7 - rank_from_top) % 2 == 0)[..., None], dark, light)
    cells = np.pad(cells, ((1, 1), (1, 1), (0, 0)), mode="constant")
    cells[0, :], cells[-1, :], cells[:, 0], cells[:, -1] = border_colour, border_colour, border_colour, border_colour
    edges = np.concatenate([[0], b + px * np.arange(9), [side]])
    lookup = np.clip(np.searchsorted(edges, np.arange(side), side="right") - 1, 0, 9)
    colours = cells.astype(np.float32)[lookup[:, None], lookup[None, :]]
    if wooden:
        shade = _grain(rng, side, side, 0.22)
        across = np.zeros((side, side), bool)  # dark squares' grain runs the other way
        across[b:b + 8 * px, b:b + 8 * px] = ((lookup[b:b + 8 * px, None] + lookup[None, b:b + 8 * px]) % 2 == 0)
        shade = np.where(across, shade.T, shade)
    else:
        shade = 1.0 + (_smooth_noise(rng, side, side, (24, 24)) - 0.5) * 0.06
    tex = np.clip(colours * shade[..., None], 0, 255).astype(np.uint8)
    if b >= px * 0.3 and rng.random() < 0.7:
        ink = max((light, dark), key=lambda c: np.abs(c - border_colour).sum())
        _coordinates(tex, px, b, tuple(int(c) for c in ink))
    return tex, name


def _coordinates(tex: np.ndarray, px: int, b: int, colour: tuple) -> None:
    """File letters and rank numbers printed in the border, as on most boards."""
    scale = px / 60.0
    for i in range(8):
        c = b + i * px + px // 2
        for text, org in ((chr(ord("a") + i), (c, tex.shape[0] - b // 2)), (str(8 - i), (b // 2, c))):
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            cv2.putText(tex, text, (org[0] - tw // 2, org[1] + th // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                        max(1, int(scale * 2)), cv2.LINE_AA)


def _table_texture(rng: np.random.Generator, n: int = 256) -> np.ndarray:
    kind = rng.integers(3)
    grey = rng.uniform(60, 200)
    colour = grey + (rng.uniform(60, 200, 3) - grey) * 0.35  # furniture colours are muted
    if kind == 0:  # wooden table
        colour = np.array([rng.uniform(120, 210), rng.uniform(70, 140), rng.uniform(30, 80)])
        tex = colour * _grain(rng, n, n, 0.3)[..., None]
    elif kind == 1:  # cloth
        tex = colour * (0.85 + 0.3 * _smooth_noise(rng, n, n, (64, 64))[..., None])
    else:  # plain surface, slight gradient
        tex = colour * (0.9 + 0.2 * _smooth_noise(rng, n, n, (3, 3))[..., None])
    return np.clip(tex, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Out-of-focus room: a wall gradient with blurred blobs of furniture and objects."""
    small = np.empty((48, 48, 3), np.float32)
    wall = rng.uniform(60, 220)
    top = wall + rng.normal(0, 15, 3)
    bottom = top * rng.uniform(0.6, 1.0)
    t = np.linspace(0, 1, 48, dtype=np.float32)[:, None, None]
    small[:] = top * (1 - t) + bottom * t
    for _ in range(int(rng.integers(3, 10))):
        grey = rng.uniform(0, 255)
        colour = tuple(float(c) for c in grey + (rng.uniform(0, 255, 3) - grey) * 0.5)
        x, y = rng.integers(0, 48, 2)
        if rng.random() < 0.5:
            w, h = rng.integers(3, 20, 2)
            cv2.rectangle(small, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
        else:
            axes = tuple(int(v) for v in rng.integers(2, 12, 2))
            cv2.ellipse(small, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    small = np.clip(cv2.GaussianBlur(small, (0, 0), 1.0), 0, 255).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


# --------------------------------------------------------------------------- drawing


def _clip_near(points_cam: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-space polygon to z >= near."""
    out = []
    n = len(points_cam)
    for i in range(n):
        p, q = points_cam[i], points_cam[(i + 1) % n]
        if p[2] >= near:
            out.append(p)
        if (p[2] >= near) != (q[2] >= near):
            t = (near - p[2]) / (q[2] - p[2])
            out.append(p + t * (q - p))
    return np.array(out)


def _warp_plane(img: np.ndarray, tex: np.ndarray, world_quad: np.ndarray, camera: Camera,
                clip: bool = False) -> None:
    """Paint ``tex`` (its corners TL, TR, BR, BL = ``world_quad``) onto a plane seen by ``camera``."""
    size = img.shape[0]
    h, w = tex.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    if not clip:
        dst = camera.project(world_quad).astype(np.float32)
        cv2.warpPerspective(tex, cv2.getPerspectiveTransform(src, dst), (size, size), dst=img,
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        return
    # a plane reaching behind the camera: map through the homography, keep only its visible part
    centre = world_quad.mean(axis=0)
    inner = centre + (world_quad - centre) * 0.05
    t_inner = src.mean(axis=0) + (src - src.mean(axis=0)) * 0.05
    homography = cv2.getPerspectiveTransform(t_inner.astype(np.float32), camera.project(inner).astype(np.float32))
    visible = _clip_near(camera.to_camera(world_quad), near=0.05)
    if len(visible) < 3:
        return
    poly = visible[:, :2] / visible[:, 2:3] * camera.focal + np.array([camera.cx, camera.cy])
    poly = np.clip(poly, -4 * size, 5 * size)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * _SUB).astype(np.int32)], 255, shift=4)
    warped = cv2.warpPerspective(tex, homography, (size, size), flags=cv2.INTER_LINEAR)
    np.copyto(img, warped, where=mask[..., None] > 0)


@dataclass
class _Object:
    """A mesh placed in the world with its material and the square it stands on (-1: clutter)."""

    mesh: Mesh
    angle: float
    offset: np.ndarray
    albedo: np.ndarray
    specular: float
    square: int

    def world(self, points: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return points @ rot.T + self.offset

    def world_normals(self, normals: np.ndarray) -> np.ndarray:
        return self.world(normals) - self.offset


def _place_pieces(labels: np.ndarray, rng: np.random.Generator, style: str, white: np.ndarray,
                  black: np.ndarray, spec: tuple[float, float], girth: float = 1.0) -> list[_Object]:
    meshes = {piece_type: widened(piece_mesh(style, piece_type), girth) for piece_type in chess.PIECE_TYPES}
    objects = []
    for square, class_id in enumerate(np.asarray(labels).tolist()):
        if class_id == EMPTY:
            continue
        piece = piece_of_class(int(class_id))
        jitter = rng.normal(0, 0.04, 2).clip(-0.1, 0.1)
        centre = np.array([square % 8 + 0.5 + jitter[0], square // 8 + 0.5 + jitter[1], 0.0])
        if piece.piece_type == chess.KNIGHT:  # knights look at the opponent, roughly
            angle = np.radians((90.0 if piece.color else -90.0) + rng.normal(0, 25))
        else:
            angle = rng.uniform(0, 2 * np.pi)
        tone = rng.uniform(0.96, 1.04)
        albedo = (white if piece.color else black) * tone
        objects.append(_Object(meshes[piece.piece_type], float(angle), centre, albedo,
                               spec[0] if piece.color else spec[1], square))
    return objects


def _clutter(rng: np.random.Generator, border: float) -> list[_Object]:
    """A few boxes (clocks, books) and cylinders (cups) on the table beside the board."""
    objects = []
    for _ in range(int(rng.integers(0, 4))):
        side = rng.integers(4)
        along = rng.uniform(-2, 10)
        away = border + rng.uniform(0.8, 4.0)
        x, y = [(along, -away), (8 + away, along), (along, 8 + away), (-away, along)][side]
        grey = rng.uniform(20, 230)
        colour = grey + (rng.uniform(20, 230, 3) - grey) * 0.6
        if rng.random() < 0.5:
            sx, sy, sz = rng.uniform(0.8, 3.0), rng.uniform(0.6, 2.0), rng.uniform(0.2, 1.4)
            mesh = box((0, 0, sz / 2), (sx, sy, sz))
        else:
            r, h = rng.uniform(0.3, 0.8), rng.uniform(0.4, 1.6)
            mesh = revolve([(r, 0.0), (r, h), (0.0, h)])
        objects.append(_Object(mesh, float(rng.uniform(0, np.pi)), np.array([x, y, 0.0]), colour, 0.2, -1))
    return objects


def _shade(normals: np.ndarray, centroids: np.ndarray, albedo: np.ndarray, specular: np.ndarray,
           camera: Camera, light: dict) -> np.ndarray:
    """Per-face colour: hemispheric ambient + Lambert + Blinn-Phong highlight, darker near the table."""
    to_light = light["direction"]
    view = camera.position - centroids
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    half = to_light + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    diffuse = np.clip(normals @ to_light, 0, None)
    ambient = light["ambient"] * (0.7 + 0.3 * normals[:, 2])
    occlusion = 0.75 + 0.25 * np.clip(centroids[:, 2] / 0.3, 0, 1)
    highlight = specular * np.clip(np.einsum("ij,ij->i", normals, half), 0, None) ** light["shininess"]
    colour = albedo * ((ambient + light["diffuse"] * diffuse) * occlusion)[:, None] + 255 * highlight[:, None]
    return np.clip(colour, 0, 255)


def _draw_shadows(img: np.ndarray, objects: list[_Object], camera: Camera, light: dict, size: int) -> None:
    """Soft cast shadows on the board/table (ground projection along the light) plus contact shadows."""
    half = size // 2  # shadows are soft: draw them at half resolution
    mask = np.zeros((half, half), np.uint8)
    d = light["direction"]
    ring = np.column_stack([np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                            np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False)), np.zeros(12)])
    cast = int(255 * light["shadow"])
    scale = _SUB * half / size
    for obj in objects:
        pts = obj.world(obj.mesh.vertices[::2])
        ground = pts - pts[:, 2:3] / d[2] * d
        hull = cv2.convexHull(np.round(camera.project(ground) * scale).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, cast, shift=4)
    for obj in objects:
        radius = np.abs(obj.mesh.vertices[:, :2]).max() * 1.05
        blob = camera.project(obj.offset + ring * radius)
        cv2.fillConvexPoly(mask, np.round(blob * scale).astype(np.int32), min(255, cast + 60), shift=4)
    _darken(img, cv2.GaussianBlur(mask, (0, 0), light["softness"] * half / 512), 0.9)


def _darken(img: np.ndarray, mask: np.ndarray, strength: float) -> None:
    """Scale ``img`` by 1 - strength * mask / 255, in place; a smaller ``mask`` is scaled up smoothly."""
    size = img.shape[0]
    light_left = cv2.resize(255 - (mask * strength).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    cv2.multiply(img, cv2.merge([light_left] * 3), dst=img, scale=1 / 255)


def _photographer_shadow(rng: np.random.Generator, camera: Camera) -> dict | None:
    """A large, very soft shadow on the near side of the board, as the photographer or phone casts
    under a ceiling light, in about a third of the photos (None otherwise)."""
    if rng.random() >= 0.35:
        return None
    away = camera.position[:2] - 4.0  # from the board centre towards the photographer
    distance = float(np.linalg.norm(away))
    towards = away / distance if distance > 0.5 else np.array([1.0, 0.0])
    across = np.array([-towards[1], towards[0]])
    centre = 4.0 + towards * rng.uniform(2.5, 5.5) + across * rng.uniform(-3.0, 3.0)
    return {"centre": centre, "radii": rng.uniform(1.2, 3.5, 2), "angle": float(rng.uniform(0, np.pi)),
            "darkness": float(rng.uniform(0.25, 0.55)), "softness": float(rng.uniform(0.15, 0.6))}


def _draw_photographer_shadow(img: np.ndarray, shadow: dict, camera: Camera) -> None:
    """Darken the image under the shadow's ground ellipse (over the pieces in it too)."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    c, s = np.cos(shadow["angle"]), np.sin(shadow["angle"])
    local = np.column_stack([shadow["radii"][0] * np.cos(t), shadow["radii"][1] * np.sin(t)])
    ground = np.column_stack([shadow["centre"] + local @ np.array([[c, s], [-s, c]]), np.zeros(len(t))])
    if (camera.to_camera(ground)[:, 2] < 0.1).any():
        return
    size = img.shape[0]
    half = size // 2
    mask = np.zeros((half, half), np.uint8)
    cv2.fillPoly(mask, [np.round(camera.project(ground) * _SUB * half / size).astype(np.int32)], 255, shift=4)
    corners = camera.project(BOARD_CORNERS)
    square_px = board_sides(corners).mean() / 8 * half / size
    _darken(img, cv2.GaussianBlur(mask, (0, 0), max(shadow["softness"] * square_px, 0.5)), shadow["darkness"])


def _draw_objects(img: np.ndarray, owner: np.ndarray | None, objects: list[_Object], camera: Camera,
                  light: dict) -> None:
    """Painter's algorithm: objects far to near, each one's visible faces far to near."""
    if not objects:
        return
    quads, normals, albedo, spec, obj_index, polys = [], [], [], [], [], []
    for i, obj in enumerate(objects):
        verts = obj.world(obj.mesh.vertices)
        quads.append(verts[obj.mesh.quads])
        normals.append(obj.world_normals(obj.mesh.quad_normals))
        n = len(obj.mesh.quads)
        albedo.append(np.broadcast_to(obj.albedo, (n, 3)))
        spec.append(np.full(n, obj.specular))
        obj_index.append(np.full(n, i))
        polys.extend((verts[idx], obj.world_normals(nrm[None])[0], i) for idx, nrm in obj.mesh.polygons)
    face_pts = np.concatenate(quads)
    face_n = np.concatenate(normals)
    face_obj = np.concatenate(obj_index)
    centroids = face_pts.mean(axis=1)
    if polys:
        centroids = np.concatenate([centroids, [p[0].mean(axis=0) for p in polys]])
        face_n = np.concatenate([face_n, [p[1] for p in polys]])
        face_obj = np.concatenate([face_obj, [p[2] for p in polys]])
        albedo.append(np.array([objects[p[2]].albedo for p in polys]))
        spec.append(np.array([objects[p[2]].specular for p in polys]))
    facing = np.einsum("ij,ij->i", face_n, camera.position - centroids) > 0
    colours = _shade(face_n, centroids, np.concatenate(albedo), np.concatenate(spec), camera, light)
    face_depth = camera.to_camera(centroids)[:, 2]
    obj_depth = camera.to_camera(np.array([o.offset + [0, 0, 0.3] for o in objects]))[:, 2]
    order = np.lexsort((-face_depth, -obj_depth[face_obj]))
    order = order[facing[order]]
    quad_px = np.round(camera.project(face_pts) * _SUB).astype(np.int32)
    colour_list = colours.tolist()
    owner_id = [o.square + 1 if o.square >= 0 else 100 for o in objects]
    n_quads = len(face_pts)
    for f in order.tolist():
        if f < n_quads:
            cv2.fillConvexPoly(img, quad_px[f], colour_list[f], shift=4)
            if owner is not None:
                cv2.fillConvexPoly(owner, quad_px[f], owner_id[face_obj[f]], shift=4)
        else:
            poly = [np.round(camera.project(polys[f - n_quads][0]) * _SUB).astype(np.int32)]
            cv2.fillPoly(img, poly, colour_list[f], shift=4)
            if owner is not None:
                cv2.fillPoly(owner, poly, owner_id[face_obj[f]], shift=4)


def _board_box(border: float, thickness: float, colour: np.ndarray) -> _Object:
    """The board's visible edges: a slab under the textured top."""
    side = 8 + 2 * border
    mesh = box((0, 0, -thickness / 2), (side, side, thickness))
    return _Object(mesh, 0.0, np.array([4.0, 4.0, 0.0]), colour, 0.1, -1)


@lru_cache(maxsize=4)
def _radial(size: int) -> np.ndarray:
    """Squared distance from the image centre, 0 at the centre and 1 at the corners."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    return (xx ** 2 + yy ** 2) * 2


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Unit Gaussian sensor noise, drawn once per process; each image reads a random window of it."""
    return np.random.default_rng(20240).standard_normal((1536, 1536), dtype=np.float32)


def _sensor(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Colour balance and exposure, vignetting, optical blur and sensor noise."""
    size = img.shape[0]
    warmth = rng.uniform(-0.08, 0.16)  # white balance left by the light: daylight (cool) to tungsten (warm)
    gains = rng.normal(1.0, 0.05, 3) * np.array([1 + warmth, 1.0, 1 - warmth]) * rng.uniform(0.8, 1.15)
    vignette = float(rng.uniform(0.0, 0.35))
    # from a downscaled phone photo (sharp, clean) to a webcam frame (soft, noisy)
    blur = float(rng.uniform(0.25, 1.4) * size / 512)
    noise = float(rng.uniform(0.5, 7.0))
    out = cv2.GaussianBlur(img, (0, 0), blur).astype(np.float32)
    out *= (1.0 - vignette * _radial(size))[..., None] * gains.astype(np.float32)
    bank = _noise_bank()
    y, x = rng.integers(0, bank.shape[0] - size, 2) if size < bank.shape[0] else (0, 0)
    grain = bank[y:y + size, x:x + size] if size <= bank.shape[0] else cv2.resize(bank, (size, size))
    chroma = rng.standard_normal((size // 4, size // 4, 3), dtype=np.float32) * (noise * 0.5)
    out += (grain * noise)[..., None]
    out += cv2.resize(chroma, (size, size), interpolation=cv2.INTER_LINEAR)
    info = {"gains": gains.tolist(), "vignette": vignette, "blur_px": blur, "noise": noise,
            "jpeg_quality": int(rng.integers(70, 96))}
    return np.clip(out, 0, 255, out=out).astype(np.uint8), info


def render_board(labels: np.ndarray, rng_seed: int, image_size: int = 512, with_ids: bool = True,
                 chess_set: ChessSet = ChessSet()) -> RenderedBoard:
    """Photograph the position ``labels`` (64 class ids, a1..h8) on a random set, board and camera.

    ``with_ids=False`` skips the ownership buffers (faster; the data set writer needs only pixels);
    ``chess_set`` fixes the set instead of drawing it.
    """
    labels = np.asarray(labels)
    if labels.shape != (64,):
        raise ValueError(f"labels must have shape (64,), got {labels.shape}")
    scene_seq, piece_seq, girth_seq = np.random.SeedSequence(rng_seed).spawn(3)  # the first two as before
    rng = np.random.default_rng(scene_seq)
    girth = chess_set.girth
    if girth is None:
        girth = float(np.random.default_rng(girth_seq).uniform(*GIRTH_RANGE))
    size = int(image_size)

    border = float(rng.uniform(0.25, 0.8))
    camera, info = _sample_camera(rng, size, border)
    light_elev, light_azim = np.radians(rng.uniform(25, 80)), rng.uniform(0, 2 * np.pi)
    light = {"direction": np.array([np.cos(light_elev) * np.cos(light_azim),
                                    np.cos(light_elev) * np.sin(light_azim), np.sin(light_elev)]),
             "ambient": rng.uniform(0.3, 0.55), "diffuse": rng.uniform(0.45, 0.75),
             "shininess": rng.uniform(8, 40), "shadow": rng.uniform(0.25, 0.55),
             "softness": rng.uniform(1.5, 5.0)}
    style = STYLES[int(rng.integers(len(STYLES)))]
    white_name = list(WHITE_MATERIALS)[int(rng.integers(len(WHITE_MATERIALS)))]
    black_name = list(BLACK_MATERIALS)[int(rng.integers(len(BLACK_MATERIALS)))]
    white_rgb, black_rgb = WHITE_MATERIALS[white_name], BLACK_MATERIALS[black_name]
    style = chess_set.style or style
    if chess_set.pieces is not None:
        (white_name, white_rgb), (black_name, black_rgb) = HELD_OUT_PIECES[chess_set.pieces]
    white = np.clip(np.asarray(white_rgb) + rng.normal(0, 6, 3), 0, 255)
    black = np.clip(np.asarray(black_rgb) + rng.normal(0, 6, 3), 0, 255)
    spec = (float(rng.uniform(0.05, 0.4)), float(rng.uniform(0.1, 0.6)))
    px = max(16, round(36 * size / 512))  # texture pixels per square, about the rendered size
    board_tex, palette = _board_texture(rng, px, border, chess_set.board)
    thickness = float(rng.choice([0.03, rng.uniform(0.1, 0.4)]))

    img = _background(rng, size)
    on_table = rng.random() < 0.85
    if on_table:
        half = 16.0
        table = np.array([[4 - half, 4 + half, -thickness], [4 + half, 4 + half, -thickness],
                          [4 + half, 4 - half, -thickness], [4 - half, 4 - half, -thickness]])
        _warp_plane(img, _table_texture(rng), table, camera, clip=True)
    clutter = _clutter(rng, border) if on_table else []
    shade_top = light["ambient"] + light["diffuse"] * light["direction"][2]
    board_top = np.clip(board_tex * shade_top, 0, 255).astype(np.uint8)
    edge_colour = board_tex[0, 0].astype(np.float64) * 0.8
    photographer = _photographer_shadow(rng, camera)
    sensor_rng = np.random.default_rng(rng.integers(2**63))

    pieces = _place_pieces(labels, np.random.default_rng(piece_seq), style, white, black, spec, girth)
    owner = np.zeros((size, size), np.int16) if with_ids else None
    _draw_objects(img, None, [_board_box(border, thickness, edge_colour)], camera, light)
    outer = np.array([[-border, 8 + border, 0], [8 + border, 8 + border, 0], [8 + border, -border, 0],
                      [-border, -border, 0]])
    _warp_plane(img, board_top, outer, camera)
    _draw_shadows(img, pieces + clutter, camera, light, size)
    _draw_objects(img, owner, pieces + clutter, camera, light)
    if photographer is not None:
        _draw_photographer_shadow(img, photographer, camera)
    image, sensor = _sensor(img, sensor_rng)

    square_ids, piece_mask = _ownership(owner, camera, size) if with_ids else (None, None)
    info.update({"style": style, "girth": girth, "white": white_name, "black": black_name, "board": palette,
                 "board_border": border, "light_elevation_deg": float(np.degrees(light_elev)),
                 "light_azimuth_deg": float(np.degrees(light_azim)), "on_table": bool(on_table),
                 "photographer_shadow": photographer is not None,
                 "projection": camera.matrix.tolist(), **sensor})
    return RenderedBoard(image, camera.project(BOARD_CORNERS), info, square_ids, piece_mask)


def _ownership(owner: np.ndarray, camera: Camera, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square ids per pixel: the piece drawn there, else the board square seen through the plane."""
    inverse = np.linalg.inv(camera.plane_homography())
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    w = inverse[2, 0] * xx + inverse[2, 1] * yy + inverse[2, 2]
    bx = (inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]) / w
    by = (inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]) / w
    on_board = (bx >= 0) & (bx < 8) & (by >= 0) & (by < 8) & (w > 0)
    board_ids = np.where(on_board, np.floor(by).clip(0, 7) * 8 + np.floor(bx).clip(0, 7), -1).astype(np.int16)
    piece_mask = (owner > 0) & (owner <= 64)
    ids = np.where(piece_mask, owner - 1, np.where(owner == 100, -1, board_ids)).astype(np.int16)
    return ids, piece_mask

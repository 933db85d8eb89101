"""Geometry: homographies, crop boxes for known camera poses, square order, bad corners."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from chessrec.errors import UserError
from chessrec.geometry import (
    CropSpec,
    board_homography,
    camera_elevation,
    crop_contact_sheet,
    height_aware_boxes,
    order_corners,
    shifted_board,
    square_crops,
    validate_corners,
)

IMAGE_SHAPE = (600, 800)


def look_at_camera(elevation_deg: float, azimuth_deg: float, roll_deg: float = 0.0, distance: float = 16.0,
                   focal_px: float = 700.0, image_shape=IMAGE_SHAPE):
    """A pinhole camera (K, R, t) in the board frame (square units, a8 corner at the origin,
    rows growing towards rank 1, z pointing down into the table) looking at the board centre.

    Azimuth 0 is White's side, 90 the h-file side.
    """
    el, az, roll = np.radians([elevation_deg, azimuth_deg, roll_deg])
    horizontal = np.array([np.sin(az), np.cos(az)])  # from board centre towards the camera
    centre = np.array([4.0, 4.0, 0.0])
    position = centre + distance * np.array([np.cos(el) * horizontal[0], np.cos(el) * horizontal[1], -np.sin(el)])
    forward = (centre - position) / distance
    right = np.array([horizontal[1], -horizontal[0], 0.0])
    down = np.cross(forward, right)
    right, down = (np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down)
    rotation = np.stack([right, down, forward])
    k = np.array([[focal_px, 0, image_shape[1] / 2], [0, focal_px, image_shape[0] / 2], [0, 0, 1]])
    return k, rotation, -rotation @ position


def project(camera, points3d: np.ndarray) -> np.ndarray:
    k, rotation, t = camera
    cam = points3d @ rotation.T + t
    pix = cam @ k.T
    return pix[:, :2] / pix[:, 2:3]


def camera_position(camera) -> np.ndarray:
    _, rotation, t = camera
    return -rotation.T @ t


def board_corners(camera) -> np.ndarray:
    return project(camera, np.array([[0, 0, 0], [8, 0, 0], [8, 8, 0], [0, 8, 0]], dtype=float))


def square_colour(sq: int) -> np.ndarray:
    return np.array([20 + 30 * (sq % 8), 20 + 30 * (sq // 8), 200], dtype=np.uint8)


def photo_of_coloured_board(camera, image_shape=IMAGE_SHAPE, texel: int = 32) -> np.ndarray:
    """The board plane, each square painted its own colour, photographed by ``camera``."""
    texture = np.zeros((8 * texel, 8 * texel, 3), dtype=np.uint8)
    for sq in range(64):
        row, file = 7 - sq // 8, sq % 8
        texture[row * texel:(row + 1) * texel, file * texel:(file + 1) * texel] = square_colour(sq)
    k, rotation, t = camera
    board_to_image = k @ np.c_[rotation[:, 0], rotation[:, 1], t] @ np.diag([1 / texel, 1 / texel, 1])
    return cv2.warpPerspective(texture, board_to_image, (image_shape[1], image_shape[0]),
                               borderValue=(90, 90, 90))


POSES = [(35, 0, 0), (50, 90, 3), (60, 200, -4), (75, 315, 0), (88, 45, 2)]


def in_box_frame(box: np.ndarray, image_points: np.ndarray) -> np.ndarray:
    """Image points in a box's own frame: (0, 0) its top-left corner, (1, 1) its bottom-right."""
    tl, tr, br, _ = box
    to_box = cv2.getAffineTransform(np.float32([tl, tr, br]), np.float32([[0, 0], [1, 0], [1, 1]]))
    return cv2.transform(image_points[None], to_box)[0]


def test_board_homography_sends_corners_to_rectified_square():
    camera = look_at_camera(55, 30)
    corners = board_corners(camera)
    h = board_homography(corners, side=400)
    mapped = cv2.perspectiveTransform(corners[None].astype(np.float64), h)[0]
    np.testing.assert_allclose(mapped, [[0, 0], [400, 0], [400, 400], [0, 400]], atol=1e-3)
    # a board point (c4's centre) projected by the camera lands where the homography puts it
    c4 = project(camera, np.array([[2.5, 4.5, 0.0]]))
    np.testing.assert_allclose(cv2.perspectiveTransform(c4[None], h)[0], [[2.5 * 50, 4.5 * 50]], atol=1e-3)


@pytest.mark.parametrize("pose", POSES)
def test_plain_crops_follow_python_chess_square_order(pose):
    camera = look_at_camera(*pose)
    image = photo_of_coloured_board(camera)
    crops = square_crops(image, board_corners(camera), CropSpec(kind="plain", size=16, mirror=False))
    assert crops.shape == (64, 3, 16, 16) and crops.dtype == np.uint8
    centres = crops[:, :, 8, 8].astype(int)
    expected = np.stack([square_colour(sq) for sq in range(64)]).astype(int)
    assert np.abs(centres - expected).max() <= 3


@pytest.mark.parametrize("pose", POSES)
def test_height_aware_box_holds_square_and_piece_head_for_known_camera_poses(pose):
    camera = look_at_camera(*pose)
    corners = board_corners(camera)
    spec = CropSpec(kind="height_aware", size=32, height_factor=1.7)
    boxes = height_aware_boxes(corners, spec, IMAGE_SHAPE)
    files, rows = np.arange(64) % 8, 7 - np.arange(64) // 8
    for sq in range(64):
        x, y = files[sq], rows[sq]
        # the square's four corners on the board, and the top of a 1.5-square-tall piece at its centre
        points = np.array([[x, y, 0], [x + 1, y, 0], [x + 1, y + 1, 0], [x, y + 1, 0], [x + 0.5, y + 0.5, -1.5]])
        inside = in_box_frame(boxes[sq], project(camera, points.astype(float)))
        assert np.all(inside > -0.02) and np.all(inside < 1.02), (pose, sq, inside)
    # boxes stay local: no box is wider than two squares
    square_px = np.linalg.norm(np.roll(corners, 1, axis=0) - corners, axis=1).max() / 8
    assert np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1).max() < 2.5 * square_px


@pytest.mark.parametrize("pose", POSES)
def test_a_disc_box_holds_a_round_base_and_the_piece_head_for_known_camera_poses(pose):
    """A round piece's base (a disc 0.9 of a square across) and the head of a piece 1.5 squares tall."""
    camera = look_at_camera(*pose)
    boxes = height_aware_boxes(board_corners(camera), CropSpec(size=32, footprint="disc"), IMAGE_SHAPE)
    files, rows = np.arange(64) % 8, 7 - np.arange(64) // 8
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    rim = 0.45 * np.c_[np.cos(angles), np.sin(angles)]
    for sq in range(64):
        centre = np.array([files[sq] + 0.5, rows[sq] + 0.5])
        points = np.r_[np.c_[centre + rim, np.zeros(16)], [[*centre, -1.5]]]
        inside = in_box_frame(boxes[sq], project(camera, points))
        assert np.all(inside > -0.02) and np.all(inside < 1.02), (pose, sq, inside)


def test_a_disc_box_is_the_same_however_the_board_is_turned_and_a_square_box_is_not():
    """Turning the board 45 degrees to the camera widens the box bounding a square's corners by about
    1.4x, so its crop holds fewer pixels of the piece; the box bounding a disc keeps its size."""
    def centre_box_size(azimuth: float, footprint: str) -> np.ndarray:
        corners = board_corners(look_at_camera(55, azimuth))
        box = height_aware_boxes(corners, CropSpec(size=32, footprint=footprint, side_factor=0.0), IMAGE_SHAPE)[27]
        return np.array([np.linalg.norm(box[1] - box[0]), np.linalg.norm(box[3] - box[0])])  # d4: width, height

    square_ratio = centre_box_size(45, "square") / centre_box_size(0, "square")
    disc_ratio = centre_box_size(45, "disc") / centre_box_size(0, "disc")
    assert square_ratio[0] > 1.25
    assert disc_ratio == pytest.approx([1.0, 1.0], abs=0.03)
    assert centre_box_size(0, "disc") == pytest.approx(centre_box_size(0, "square"), rel=0.1)  # squarely seen: alike


@pytest.mark.parametrize("azimuth", [0.0, 130.0, 250.0])
def test_in_a_top_down_photo_every_box_leans_away_from_the_point_below_the_camera(azimuth):
    """Straight from above, pieces lean out from the image point under the camera, on every side of it:
    the boxes follow them round (a box standing "image up" would lose the head of a piece below it)."""
    camera = look_at_camera(89.5, azimuth, distance=12.0)
    corners = board_corners(camera)
    boxes = height_aware_boxes(corners, CropSpec(kind="height_aware", size=16, height_factor=1.7), IMAGE_SHAPE)
    x, y, _ = camera_position(camera)
    below_camera = project(camera, np.array([[x, y, 0.0]]))[0]
    files, rows = np.arange(64) % 8, 7 - np.arange(64) // 8
    centres = project(camera, np.c_[files + 0.5, rows + 0.5, np.zeros(64)])
    away = centres - below_camera
    up = (boxes[:, 0] + boxes[:, 1]) / 2 - (boxes[:, 2] + boxes[:, 3]) / 2
    square_px = np.linalg.norm(corners[1] - corners[0]) / 8
    apart = np.linalg.norm(away, axis=1) > square_px  # right under the camera a piece leans nowhere
    cosine = np.einsum("ij,ij->i", up, away)[apart] / np.linalg.norm(up[apart], axis=1) / np.linalg.norm(away[apart], axis=1)
    assert apart.sum() >= 56 and cosine.min() > 0.95
    assert (away[apart, 1] > 0).sum() >= 20  # squares below that point in the image: their boxes point down


def test_corners_clicked_by_hand_on_a_phone_photo_still_give_the_true_vertical():
    """A phone photo taken from 35 degrees round from White's side, close: pieces lean by up to 30
    degrees from the photo's own vertical (at a1).  Corners clicked up to 12 pixels off (on a board
    about 2,000 pixels a side) make the two focal-length constraints disagree by more than 5% (the
    bound before, which cut every box "image up" here); the boxes must still follow the pieces."""
    shape = (5760, 3240)  # a portrait phone photo, focal length 0.75 of its long side
    camera = look_at_camera(60, 35, distance=16.0, focal_px=0.75 * 5760, image_shape=shape)
    clicked = board_corners(camera) + np.array([[8.0, -6.0], [-10.0, 4.0], [6.0, 10.0], [-4.0, -8.0]])
    boxes = height_aware_boxes(clicked, CropSpec(kind="height_aware", size=40), shape)
    files, rows = np.arange(64) % 8, 7 - np.arange(64) // 8
    feet = project(camera, np.c_[files + 0.5, rows + 0.5, np.zeros(64)])
    heads = project(camera, np.c_[files + 0.5, rows + 0.5, -np.ones(64)])
    up = (boxes[:, 0] + boxes[:, 1]) / 2 - (boxes[:, 2] + boxes[:, 3]) / 2
    lean = np.degrees(np.arccos(np.einsum("ij,ij->i", up, heads - feet)
                                / np.linalg.norm(up, axis=1) / np.linalg.norm(heads - feet, axis=1)))
    image_up = np.degrees(np.arccos(-(heads - feet)[:, 1] / np.linalg.norm(heads - feet, axis=1)))
    assert image_up.max() > 25.0  # the photo's own vertical would be far off
    assert lean.max() < 12.0  # "image up" would be 30 degrees off at a1


@pytest.mark.parametrize("elevation", [35.0, 55.0, 80.0])
def test_camera_elevation_is_read_from_foreshortening(elevation):
    camera = look_at_camera(elevation, 120, distance=40, focal_px=2000)
    assert camera_elevation(board_corners(camera), IMAGE_SHAPE) == pytest.approx(elevation, abs=4.0)


def test_height_aware_crops_are_upright_and_taller_than_wide():
    camera = look_at_camera(45, 0)
    image = photo_of_coloured_board(camera)
    crops = square_crops(image, board_corners(camera), CropSpec(kind="height_aware", size=16, mirror=False))
    assert crops.shape == (64, 3, 32, 16)
    # camera on White's side: the lower part of e4's crop shows e4, the upper part the square behind (e5)
    e4, e5 = 28, 36
    assert np.abs(crops[e4, :, 28, 8].astype(int) - square_colour(e4)).max() <= 3
    assert np.abs(crops[e4, :, 10, 8].astype(int) - square_colour(e5)).max() <= 3


def test_mirror_flips_files_a_to_d_only():
    camera = look_at_camera(60, 10)
    image = photo_of_coloured_board(camera)
    corners = board_corners(camera)
    plain = square_crops(image, corners, CropSpec(kind="height_aware", size=16, mirror=False))
    mirrored = square_crops(image, corners, CropSpec(kind="height_aware", size=16, mirror=True))
    left = np.arange(64) % 8 < 4
    np.testing.assert_array_equal(mirrored[left], plain[left][..., ::-1])
    np.testing.assert_array_equal(mirrored[~left], plain[~left])


def test_order_corners_puts_a1_where_the_caller_says():
    square = [[10, 10], [110, 10], [110, 110], [10, 110]]
    shuffled = [square[2], square[0], square[3], square[1]]
    np.testing.assert_array_equal(order_corners(shuffled), square)
    np.testing.assert_array_equal(order_corners(shuffled, a1="top-right")[3], [110, 10])


@pytest.mark.parametrize(
    ("corners", "message"),
    [
        ([[100, 100], [400, 100], [100, 400], [400, 400]], "convex clockwise"),  # self-intersecting
        ([[100, 100], [100, 400], [400, 400], [400, 100]], "convex clockwise"),  # mirrored (anticlockwise)
        ([[100, 100], [400, 100], [250, 150], [100, 400]], "convex clockwise"),  # non-convex
        ([[100, 100], [140, 100], [140, 140], [100, 140]], "too small"),
        ([[100, 100], [900, 100], [900, 400], [100, 400]], "outside"),
        ([[100, 100], [400, 100], [400, np.nan], [100, 400]], "finite"),
        ([[100, 100], [400, 100], [400, 400]], "finite"),
    ],
)
def test_validate_corners_rejects_bad_quads(corners, message):
    with pytest.raises(UserError, match=message):
        validate_corners(corners, IMAGE_SHAPE)


def test_square_crops_refuses_garbage_instead_of_cropping():
    image = np.zeros((*IMAGE_SHAPE, 3), dtype=np.uint8)
    with pytest.raises(UserError):
        square_crops(image, [[100, 100], [100, 400], [400, 400], [400, 100]], CropSpec())
    with pytest.raises(UserError, match="uint8"):
        square_crops(image.astype(np.float32), [[100, 100], [400, 100], [400, 400], [100, 400]], CropSpec())


@pytest.mark.parametrize("bad", [dict(kind="fancy"), dict(size=4), dict(size=32.0), dict(height_factor=-1.0),
                                 dict(footprint="oval")])
def test_crop_spec_rejects_bad_parameters(bad):
    with pytest.raises(UserError):
        CropSpec(**bad)


def test_crop_spec_output_shape():
    assert CropSpec(kind="plain", size=24).output_shape == (24, 24)
    assert CropSpec(kind="height_aware", size=24).output_shape == (48, 24)


def test_contact_sheet_lays_out_boards_side_by_side(tmp_path):
    crops = np.zeros((64, 3, 20, 10), dtype=np.uint8)
    crops[56] = 255  # a8 goes top-left
    out = crop_contact_sheet([crops, crops], tmp_path / "sheet.png", titles=["one", "two"])
    sheet = cv2.imread(str(out))
    assert sheet.shape[1] > 2 * 8 * 10 and sheet.shape[0] > 8 * 20
    assert list(tmp_path.iterdir()) == [out]


def test_a_board_shifted_by_whole_squares_follows_its_own_perspective_grid():
    corners = np.array([[210.0, 120.0], [590.0, 140.0], [700.0, 520.0], [90.0, 480.0]])  # a8, h8, h1, a1
    to_image = np.linalg.inv(board_homography(corners))

    def grid_point(x: float, y: float) -> np.ndarray:
        p = to_image @ np.array([x, y, 1.0])
        return p[:2] / p[2]

    towards_h = shifted_board(corners, files=1, ranks=0)
    np.testing.assert_allclose(towards_h[0], grid_point(1, 0), atol=1e-3)  # a8's corner is now b8's
    np.testing.assert_allclose(towards_h[2], grid_point(9, 8), atol=1e-3)  # a square beyond h1, foreshortened
    towards_8 = shifted_board(corners, files=0, ranks=1)
    np.testing.assert_allclose(towards_8[3], grid_point(0, 7), atol=1e-3)  # a1's corner is now a2's
    np.testing.assert_allclose(shifted_board(towards_h, files=-1, ranks=0), corners, atol=1e-3)

"""Real-data loaders: ChessReD and chesscog-style labels into BoardSample, and every bad input reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import chess
import cv2
import numpy as np
import pytest

from chessrec.datasets import (BAD_CORNERS, DOUBLE_OCCUPANCY, ESCAPING_PATH, INVALID_FEN, MISSING_CORNERS,
                               MISSING_IMAGE, UNREADABLE_IMAGE, import_dataset, load_chesscog, load_chessred,
                               load_dataset, staged_dir)
from chessrec.errors import UserError
from chessrec.labels import labels_from_fen

W, H = 320, 240
# a8, h8, h1, a1 of a board seen with White at the bottom
CORNERS = [[60.0, 30.0], [260.0, 30.0], [300.0, 220.0], [20.0, 220.0]]
FEN = "r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"


def _image(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(str(path))).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)
    return path.name


def _chessred(root: Path, mutate=None) -> Path:
    """A two-game ChessReD folder: 3 images with corners, 1 without (as in full ChessReD)."""
    board = chess.BaseBoard(FEN)
    images, pieces, corners = [], [], []
    for image_id in range(4):
        rel = f"images/{image_id // 2}/G{image_id // 2:03d}_IMG{image_id:03d}.jpg"
        _image(root / rel)
        images.append({"id": image_id, "file_name": Path(rel).name, "path": rel, "height": H, "width": W,
                       "game_id": image_id // 2, "move_id": image_id % 2})
        for sq, piece in board.piece_map().items():
            pieces.append({"id": len(pieces), "image_id": image_id, "chessboard_position": chess.square_name(sq),
                           "category_id": "PRNBQKprnbqk".index(piece.symbol())})
        if image_id != 3:
            corners.append({"image_id": image_id, "corners": dict(zip(
                ("top_left", "top_right", "bottom_right", "bottom_left"), CORNERS))})
    doc = {"images": images, "annotations": {"pieces": pieces, "corners": corners},
           "splits": {"train": {"image_ids": [0, 1]}, "test": {"image_ids": [2, 3]},
                      "chessred2k": {"train": {"image_ids": [0]}}}}
    if mutate:
        mutate(doc, root)
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def _chesscog(root: Path, records: dict[str, dict] | None = None) -> Path:
    """Per-image JSON files in train/ and test/ subfolders, corners in scrambled order."""
    records = records or {}
    for k, split in enumerate(["train", "train", "test"]):
        name = f"{split}/{k:04d}"
        _image(root / f"{name}.png")
        rec = {"fen": FEN + " w KQkq - 0 1", "corners": [CORNERS[i] for i in (2, 0, 3, 1)], "white_turn": True}
        rec.update(records.get(name, {}))
        (root / f"{name}.json").write_text(json.dumps(rec))
    return root


def test_chessred_loader_reads_labels_corners_games_and_splits(tmp_path):
    load = load_chessred(_chessred(tmp_path))
    assert [s.split for s in load.samples] == ["train", "train", "test"]
    assert [(s.game_id, s.move_id) for s in load.samples] == [("0", 0), ("0", 1), ("1", 0)]
    assert all(np.array_equal(s.labels, labels_from_fen(FEN)) for s in load.samples)
    assert np.allclose(load.samples[0].corners, CORNERS)


def test_chessred_images_without_corners_are_reported_not_fatal(tmp_path):
    load = load_chessred(_chessred(tmp_path))
    assert load.counts == {MISSING_CORNERS: 1}
    assert load.skipped[0].file == "images/1/G001_IMG003.jpg"
    assert "skipped 1" in load.report()


def test_chesscog_per_image_json_sorts_corners_with_white_at_the_bottom(tmp_path):
    load = load_chesscog(_chesscog(tmp_path))
    assert [(s.image_path.name, s.split) for s in load.samples] == [
        ("0002.png", "test"), ("0000.png", "train"), ("0001.png", "train")]
    assert all(np.allclose(s.corners, CORNERS) for s in load.samples)  # a8, h8, h1, a1
    assert load.samples[0].fen == FEN


def test_chesscog_photo_from_blacks_side_puts_a1_top_right(tmp_path):
    load = load_chesscog(_chesscog(tmp_path, {"train/0000": {"white_turn": False}}))
    corners = {s.image_path.name: s.corners for s in load.samples}
    assert np.allclose(corners["0000.png"], [CORNERS[i] for i in (2, 3, 0, 1)])
    assert np.allclose(corners["0001.png"], CORNERS)


def test_chesscog_single_labels_file_with_image_key(tmp_path):
    _image(tmp_path / "photos" / "a.jpg")
    _image(tmp_path / "photos" / "b.jpg")
    labels = {"photos/a.jpg": {"corners": CORNERS[::-1], "fen": FEN},
              "whatever": {"image": "photos/b.jpg", "corners": CORNERS, "fen": "8/8/8/8/8/8/8/K6k w - - 0 1"}}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    load = load_dataset("chesscog", tmp_path)
    assert [s.image_path.name for s in load.samples] == ["a.jpg", "b.jpg"]
    assert all(np.allclose(s.corners, CORNERS) for s in load.samples)
    assert load.samples[1].fen == "8/8/8/8/8/8/8/K6k"
    assert {s.split for s in load.samples} <= {"train", "val", "test"}


def _no_image(doc, root):
    (root / doc["images"][1]["path"]).unlink()


def _garbage_image(doc, root):
    (root / doc["images"][1]["path"]).write_bytes(b"not a jpeg at all")


def _truncated_image(doc, root):
    path = root / doc["images"][1]["path"]
    path.write_bytes(path.read_bytes()[:400])


def _escaping_path(doc, root):
    _image(root.parent / "outside.jpg")
    doc["images"][1]["path"] = "../outside.jpg"


def _corner_outside(doc, root):
    doc["annotations"]["corners"][1]["corners"]["bottom_right"] = [W + 50.0, 220.0]


def _bow_tie(doc, root):
    c = doc["annotations"]["corners"][1]["corners"]
    c["bottom_right"], c["bottom_left"] = c["bottom_left"], c["bottom_right"]


def _two_pieces(doc, root):
    first = next(p for p in doc["annotations"]["pieces"] if p["image_id"] == 1)
    doc["annotations"]["pieces"].append({**first, "id": 999, "category_id": 4})


@pytest.mark.parametrize("mutate, problem", [
    (_no_image, MISSING_IMAGE), (_garbage_image, UNREADABLE_IMAGE), (_truncated_image, UNREADABLE_IMAGE),
    (_escaping_path, ESCAPING_PATH), (_corner_outside, BAD_CORNERS), (_bow_tie, BAD_CORNERS),
    (_two_pieces, DOUBLE_OCCUPANCY)])
def test_bad_chessred_sample_names_the_file_or_is_skipped_and_counted(tmp_path, mutate, problem):
    root = _chessred(tmp_path / "set", mutate)
    named = _doc_path(root)
    with pytest.raises(UserError, match=f"^{named}: {problem}"):
        load_chessred(root)
    load = load_chessred(root, skip_bad=True)
    assert load.counts == {problem: 1, MISSING_CORNERS: 1}
    assert len(load.samples) == 2 and any(s.file == named for s in load.skipped)


def _doc_path(root: Path) -> str:
    """The path the annotation file gives for image 1 (the one each case breaks)."""
    return json.loads((root / "annotations.json").read_text())["images"][1]["path"]


@pytest.mark.parametrize("record, problem", [
    ({"fen": "rnbqkbnr/pppppppp/9/8/8/8/PPPPPPPP/RNBQKBNR w - - 0 1"}, INVALID_FEN),
    ({"fen": "not a fen"}, INVALID_FEN),
    ({"corners": [[60, 30], [260, 30], [150, 60], [20, 220]]}, BAD_CORNERS),  # not convex
    ({"corners": [[60, 30], [260, 30], [300, 400], [20, 220]]}, BAD_CORNERS),  # off the image
    ({"image": "../../elsewhere.png"}, ESCAPING_PATH),
    ({"image": "missing.png"}, MISSING_IMAGE)])
def test_bad_chesscog_sample_names_the_file_or_is_skipped_and_counted(tmp_path, record, problem):
    root = _chesscog(tmp_path / "set", {"train/0001": record})
    _image(tmp_path / "elsewhere.png")
    with pytest.raises(UserError, match=f"train/0001.json: {problem}"):
        load_chesscog(root)
    load = load_chesscog(root, skip_bad=True)
    assert load.counts == {problem: 1} and len(load.samples) == 2


def test_unknown_source_and_missing_folder_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data.source"):
        load_dataset("flickr", tmp_path)
    with pytest.raises(UserError, match="annotations.json: not found"):
        load_dataset("chessred", tmp_path / "nowhere")
    with pytest.raises(UserError, match="no such data set folder"):
        load_dataset("chesscog", tmp_path / "nowhere")


def test_import_copies_good_samples_and_keeps_the_skip_report(tmp_path):
    root = _chessred(tmp_path / "set", _two_pieces)
    samples = import_dataset("chessred", root, tmp_path / "raw", skip_bad=True)
    assert len(samples) == 2 and all(s.image_path.is_file() for s in samples)
    again = load_dataset("synthetic", tmp_path / "raw").samples
    assert [s.fen for s in again] == [s.fen for s in samples]
    assert [s.split for s in again] == ["train", "test"]
    report = json.loads((tmp_path / "raw" / "skipped.json").read_text())
    assert report["counts"] == {DOUBLE_OCCUPANCY: 1, MISSING_CORNERS: 1}


def test_failed_import_leaves_nothing_half_written(tmp_path):
    root = _chessred(tmp_path / "set", _two_pieces)
    with pytest.raises(UserError):
        import_dataset("chessred", root, tmp_path / "out" / "raw")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_killed_runs_staging_folders_are_removed_by_the_next_run_and_a_live_ones_are_kept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(gone.stdout), os.getppid()  # a process that has ended; this test's parent
    abandoned = [tmp_path / f".raw.tmp-{dead_pid}-x1y2", tmp_path / f".raw.old-{dead_pid}"]
    kept = [tmp_path / f".raw.tmp-{live_pid}-a3b4", tmp_path / ".raw.tmp-legacy", tmp_path / f".rawer.tmp-{dead_pid}-c5"]
    for folder in abandoned + kept:
        (folder / "images").mkdir(parents=True)
    with staged_dir(tmp_path / "raw") as staging:
        (staging / "annotations.json").write_text("{}")
    assert (tmp_path / "raw" / "annotations.json").is_file()
    assert not any(folder.exists() for folder in abandoned) and all(folder.is_dir() for folder in kept)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/real-dev is not available")
def test_real_dev_photos_load_with_a1_at_the_bottom_left():
    load = load_chesscog(SHARED)
    assert len(load.samples) == 30 and not load.skipped
    for s in load.samples:
        a8, h8, h1, a1 = s.corners
        assert a1[1] > a8[1] and h1[1] > h8[1] and h1[0] > a1[0]

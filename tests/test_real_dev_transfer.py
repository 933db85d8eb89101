"""The sim-to-real measurement script: photo shrinking, crops of the real photos, mistake summary."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from dvclive.lightning import DVCLiveLogger

from chessrec.config import validate_params
from chessrec.datasets import load_chesscog
from chessrec.features import write_arrays
from chessrec.geometry import CropSpec, board_sides
from chessrec.labels import EMPTY
from chessrec.synth import render, render_board
from chessrec.training import fit

REPO = Path(__file__).resolve().parents[1]
REAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"


@pytest.fixture(scope="module")
def transfer():
    """The script as a module (imported once: it pulls in torch and Lightning)."""
    spec = importlib.util.spec_from_file_location("real_dev_transfer", REPO / "scripts" / "real_dev_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shrink_to_board_keeps_corners_on_the_same_scene_points(transfer):
    image = np.zeros((1000, 800, 3), np.uint8)
    image[395:406, 295:306] = 255  # a bright marker centred on (300, 400)
    corners = np.array([[100, 100], [700, 100], [700, 900], [100, 900]], float)
    small, scaled = transfer.shrink_to_board(image, corners, 200)
    assert board_sides(scaled).max() == pytest.approx(200, abs=0.5)
    marker = (np.array([300, 400]) + 0.5) * small.shape[1] / 800 - 0.5
    y, x = np.unravel_index(np.argmax(small[..., 0]), small.shape[:2])
    assert np.hypot(x - marker[0], y - marker[1]) <= 1.0


def test_shrink_to_board_never_enlarges(transfer):
    image = np.zeros((300, 300, 3), np.uint8)
    corners = np.array([[50, 50], [150, 50], [150, 150], [50, 150]], float)
    same, kept = transfer.shrink_to_board(image, corners, 200)
    assert same is image and np.array_equal(kept, corners)


def test_top_confusions_lists_the_most_frequent_mistakes_first(transfer):
    true = np.full((2, 64), EMPTY)
    pred = true.copy()
    true[:, :3] = 0  # white pawns ...
    pred[:, :3] = 6  # ... read as black pawns, six times
    pred[0, 10] = 1  # one empty square read as a white knight
    mistakes = transfer.top_confusions(np.bincount(true.ravel() * 13 + pred.ravel(), minlength=169).reshape(13, 13))
    assert [m["count"] for m in mistakes] == [6, 1]
    assert mistakes[0]["true"] != mistakes[0]["predicted"]


@pytest.mark.skipif(not REAL_DEV.is_dir(), reason="../shared/data/real-dev is not present")
def test_real_dev_photos_give_one_crop_per_square_at_the_model_size(transfer):
    samples = load_chesscog(REAL_DEV).samples[:2]
    spec = CropSpec(kind="height_aware", size=24, mirror=True)
    by_size = transfer.real_crops(samples, {"square": spec}, [transfer.SYNTHETIC_BOARD_PX, 0])
    for by_spec in by_size.values():
        crops = by_spec["square"]
        assert crops.shape == (2, 64, 3, 48, 24) and crops.dtype == np.uint8
        assert crops.std() > 10  # real content, not a replicated border


def _first_seed_with_photographer_shadow(labels: np.ndarray) -> int:
    return next(seed for seed in range(100)
                if render_board(labels, seed, 192, with_ids=False).camera["photographer_shadow"])


def test_photographer_shadow_only_darkens_the_image(monkeypatch):
    """The shadow added for real photos darkens a soft region and leaves every other pixel exactly as it was."""
    labels = np.full(64, EMPTY)
    seed = _first_seed_with_photographer_shadow(labels)
    shadowed = render_board(labels, seed, 192, with_ids=False).image.astype(int)
    monkeypatch.setattr(render, "_draw_photographer_shadow", lambda img, shadow, camera: None)
    plain = render_board(labels, seed, 192, with_ids=False).image.astype(int)
    change = plain - shadowed
    assert change.min() >= -1  # only darker (one grey level of rounding at most)
    assert (change.max(axis=2) > 15).mean() > 0.02  # a sizeable, clearly darker region
    assert (change.max(axis=2) == 0).mean() > 0.3  # and most of the picture untouched


@pytest.mark.skipif(not REAL_DEV.is_dir(), reason="../shared/data/real-dev is not present")
def test_transfer_script_writes_metrics_per_decoder_for_a_trained_checkpoint(transfer, tmp_path):
    """End to end on two real photos with a checkpoint from the real training code (one tiny epoch)."""
    rng = np.random.default_rng(0)
    (tmp_path / "f").mkdir()
    for split, n in (("train", 8), ("val", 2)):
        labels = rng.integers(0, 13, size=(n, 64))
        write_arrays(tmp_path / f"f/{split}", {
            "crops_square": rng.integers(0, 255, size=(n, 64, 3, 16, 8), dtype=np.uint8), "labels": labels})
    params = validate_params({"features": {"crop": "plain", "size": 8}, "model": {"width": 4},
                              "train": {"epochs": 1, "batch_size": 128}})
    logger = DVCLiveLogger(dir=str(tmp_path / "live"), report=None, save_dvc_exp=False, dvcyaml=False)
    fit(params, tmp_path / "f", tmp_path / "m.ckpt", logger, callbacks=[])
    data = tmp_path / "real"
    data.mkdir()
    records = json.loads((REAL_DEV / "labels.json").read_text())
    chosen = dict(sorted(records.items())[:2])
    for name in chosen:
        shutil.copy(REAL_DEV / name, data / name)
    (data / "labels.json").write_text(json.dumps(chosen))

    out, sheet = tmp_path / "transfer.json", tmp_path / "plots" / "real_dev_crops.png"
    assert transfer.main(["--model", str(tmp_path / "m.ckpt"), "--data", str(data), "--out", str(out),
                          "--crops-png", str(sheet)]) == 0
    drawn = cv2.imread(str(sheet))
    assert drawn.shape[1] > drawn.shape[0] and drawn.std() > 10  # two boards side by side, not blank
    report = json.loads(out.read_text())
    assert report["n_photos"] == 2
    metrics = report["by_board_px"][str(transfer.SYNTHETIC_BOARD_PX)]
    assert set(metrics) == set(transfer.DECODERS)
    for m in metrics.values():
        assert 0.0 <= m["square_acc"] <= 1.0 and sum(s["support"] for s in m["per_class"].values()) == 128

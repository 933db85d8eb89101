"""The model released with the package: present with its provenance, and used when no pipeline model exists."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import chess
import numpy as np
import pytest
from PIL import Image

from chessrec.inference.loader import RELEASED_MODEL
from chessrec.labels import labels_from_board, labels_from_fen
from chessrec.synth import render_board

SRC = Path(__file__).resolve().parents[1] / "src"
PROVENANCE = RELEASED_MODEL.with_suffix(".json")
pytestmark = pytest.mark.skipif(not RELEASED_MODEL.is_file(), reason="no released model in this checkout")


def test_released_model_carries_its_provenance():
    record = json.loads(PROVENANCE.read_text())
    assert record["sha256"] == hashlib.sha256(RELEASED_MODEL.read_bytes()).hexdigest()
    assert record["profile"] == "full" and len(record["commit"]) >= 40
    assert 0 < record["test_metrics"]["square_acc_low"] <= record["test_metrics"]["square_acc"] <= 1
    assert RELEASED_MODEL.stat().st_size < 5e6  # a few MB at most, tracked by git


def test_predict_uses_the_released_model_where_no_pipeline_has_run(tmp_path):
    board = chess.Board()
    for san in ("e4", "e5", "Nf3", "Nc6", "Bb5"):
        board.push_san(san)
    truth = labels_from_board(board)
    read = []
    for seed in (1, 2, 3):
        rendered = render_board(truth, rng_seed=seed, image_size=768, with_ids=False)
        Image.fromarray(rendered.image).save(tmp_path / f"photo{seed}.png")
        corners = ",".join(f"{v:.1f}" for v in rendered.corners.ravel())
        result = subprocess.run([sys.executable, "-m", "chessrec.cli", "predict", f"photo{seed}.png", "--corners",
                                 corners, "--a1", _a1(rendered.corners)], cwd=tmp_path, capture_output=True,
                                text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        read.append((labels_from_fen(result.stdout.strip()) == truth).mean())
    assert not (tmp_path / "models").exists()
    assert np.mean(read) >= 0.9, read  # the released model reads a rendered game position, no training here


def _a1(corners: np.ndarray) -> str:
    from chessrec.geometry import order_corners

    image_order = order_corners(corners, "bottom-left")
    names = ("top-left", "top-right", "bottom-right", "bottom-left")
    return names[int(np.argmin(np.linalg.norm(image_order - corners[3], axis=1)))]

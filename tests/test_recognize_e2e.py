"""``chessrec predict`` on rendered photos with a model trained by the project's own training code.

Inference must cut the very crops the model was evaluated on: the FEN ``predict`` prints for a
test photo is the FEN the evaluation decodes from that photo's featurized crops.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from chessrec.cli import main
from chessrec.decoding import decode
from chessrec.geometry import order_corners
from chessrec.labels import fen_from_labels

pytestmark = pytest.mark.slow

IMAGE_CORNERS = ("top-left", "top-right", "bottom-right", "bottom-left")


@pytest.fixture(scope="module")
def rendered_project(tmp_path_factory):
    """Render a few games, featurize, and train a small classifier for one epoch."""
    from chessrec.config import validate_params
    from chessrec.features import featurize
    from chessrec.geometry import CropSpec
    from chessrec.synth import render_dataset
    from chessrec.training import fit

    root = tmp_path_factory.mktemp("e2e")
    samples = render_dataset(root / "raw", n_games=3, moves_per_game=4, n_random=0, image_size=256, seed=3,
                             workers=1, split_fractions=(0.34, 0.33, 0.33))
    features = {"crop": "height_aware", "size": 16, "mirror": True, "extra_inputs": True}
    featurize(samples, {"square": CropSpec(kind="height_aware", size=16, mirror=True)}, root / "features", workers=1)
    params = validate_params({"features": features, "model": {"name": "tiny_cnn", "width": 8, "dropout": 0.0},
                              "train": {"epochs": 1, "batch_size": 256}})
    fit(params, root / "features", root / "model.ckpt", logger=False, callbacks=[])
    return root, [s for s in samples if s.split == "test"]


def _a1_in_image(corners: np.ndarray) -> str:
    """Which image corner the annotated a1 corner (last in CORNER_NAMES order) is."""
    image_order = order_corners(corners, "bottom-left")
    return IMAGE_CORNERS[int(np.argmin(np.linalg.norm(image_order - corners[3], axis=1)))]


def test_predict_reads_rendered_photos_as_the_evaluation_does(rendered_project, capsys):
    from chessrec.features import crops_by_spec, load_features
    from chessrec.inference.loader import load_model
    from chessrec.inference.views import with_views

    root, test_samples = rendered_project
    model = root / "model.ckpt"
    features = load_features(root / "features" / "test")
    # both read every crop as cut and mirrored (evaluate.mirror_average, the recognizer's default)
    probs = with_views(load_model(model), True).predict_proba(crops_by_spec(features))
    for sample in test_samples[:3]:
        shuffled = sample.corners[[2, 0, 3, 1]]
        argv = ["predict", str(sample.image_path), "--corners", ",".join(f"{v:.3f}" for v in shuffled.ravel()),
                "--a1", _a1_in_image(sample.corners), "--model", str(model), "--decoder", "topk_legal", "--json"]
        assert main(argv) == 0
        record = json.loads(capsys.readouterr().out)
        index = list(features["image_path"]).index(sample.image_path.name)
        expected = decode("topk_legal", probs[index])
        assert record["fen"] == fen_from_labels(expected.labels)
        np.testing.assert_allclose([record["corners"][k] for k in ("top_left", "top_right", "bottom_right",
                                                                   "bottom_left")], sample.corners, atol=0.01)
        assert record["valid"] == expected.valid and record["decoder"] == "topk_legal"

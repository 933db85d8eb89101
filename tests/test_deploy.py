"""Edge deployment: ONNX export with its card, ONNX Runtime backend parity, int8, broken files, report rows.

The model is a real checkpoint from the project's training code (a short run on rendered boards,
so int8 calibration sees real activations); ONNX files are written and read back from disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from chessrec.config import validate_params
from chessrec.decoding import DecodeOptions
from chessrec.deploy.artefacts import export_artefacts, int8_path
from chessrec.deploy.compare import Variant, score_variants
from chessrec.deploy.onnx_export import PARITY_TOLERANCE, max_probability_difference
from chessrec.errors import UserError
from chessrec.features import crops_by_spec, featurize, load_features
from chessrec.inference.card import CARD_KEY
from chessrec.inference.loader import load_model
from chessrec.inference.onnx_backend import OnnxSquareModel
from chessrec.recognize import recognize
from chessrec.report.experiments import parse_exp_show
from chessrec.synth import render_dataset
from chessrec.training import fit

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Rendered boards, featurized, and a strided_cnn trained for two epochs on them."""
    root = tmp_path_factory.mktemp("deploy")
    samples = render_dataset(root / "raw", n_games=3, moves_per_game=4, n_random=6, image_size=256, seed=3)
    params = validate_params({"features": {"crop": "height_aware", "size": 16},
                              "model": {"name": "strided_cnn", "width": 8, "dropout": 0.0},
                              "train": {"epochs": 2, "batch_size": 256}})
    featurize(samples, params.features.crop_specs(), root / "features")
    fit(params, root / "features", root / "model.ckpt", logger=False, callbacks=[])
    return root


def _crops(root: Path, split: str) -> dict[str, np.ndarray]:
    return crops_by_spec(load_features(root / "features" / split))


@pytest.fixture(scope="module")
def exported(trained) -> dict[str, Path]:
    return export_artefacts(trained / "model.ckpt", trained / "model.onnx", _crops(trained, "train"), int8=True)


def test_onnx_export_matches_torch_within_1e_4_on_the_test_split(trained, exported):
    torch_model, onnx_model = load_model(trained / "model.ckpt"), load_model(exported["onnx_fp32"])
    assert isinstance(onnx_model, OnnxSquareModel)
    test = _crops(trained, "test")
    assert max_probability_difference(torch_model, onnx_model, test) <= PARITY_TOLERANCE
    np.testing.assert_allclose(onnx_model.predict_proba(test).sum(axis=-1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def cascade(trained) -> Path:
    """A two-stage cascade (occupancy on 12 px crops by a network half as wide, pieces on 16 px crops)
    trained on the same boards."""
    from chessrec.datasets import load_dataset

    params = validate_params({"features": {"crop": "height_aware", "size": 12, "piece_size": 16},
                              "model": {"name": "strided_cnn", "width": 8, "occupancy_width": 4, "dropout": 0.0},
                              "train": {"epochs": 2, "batch_size": 256}})
    featurize(load_dataset("synthetic", trained / "raw").samples, params.features.crop_specs(),
              trained / "cascade_features")
    fit(params, trained / "cascade_features", trained / "cascade.ckpt", logger=False, callbacks=[])
    return trained


def test_a_cascade_exports_to_one_onnx_file_that_keeps_skipping_empty_squares(cascade):
    from chessrec.inference.model import Cascade

    crops = {split: crops_by_spec(load_features(cascade / "cascade_features" / split)) for split in ("train", "test")}
    written = export_artefacts(cascade / "cascade.ckpt", cascade / "cascade.onnx", crops["train"], int8=True)
    torch_model, onnx_model = load_model(cascade / "cascade.ckpt"), load_model(written["onnx_fp32"])
    assert isinstance(torch_model, Cascade) and isinstance(onnx_model, Cascade)
    assert set(onnx_model.crop_specs) == {"occupancy", "piece"}
    assert max_probability_difference(torch_model, onnx_model, crops["test"]) <= PARITY_TOLERANCE
    int8 = load_model(written["onnx_int8"])
    assert isinstance(int8, Cascade) and int8.predict_proba(crops["test"]).shape == (len(crops["test"]["piece"]), 64, 13)


def test_an_ensemble_of_cascades_exports_every_stage_of_every_member_under_its_prefix(cascade):
    """The released model's shape: members that are cascades, so prefixes nest (members.0.occupancy.)."""
    from chessrec.inference.ensemble import Ensemble, combine_files
    from chessrec.inference.model import Cascade

    combine_files([cascade / "cascade.ckpt", cascade / "cascade.ckpt"], cascade / "pair.ckpt")
    crops = {split: crops_by_spec(load_features(cascade / "cascade_features" / split)) for split in ("train", "test")}
    written = export_artefacts(cascade / "pair.ckpt", cascade / "pair.onnx", crops["train"], int8=True)
    onnx_model = load_model(written["onnx_fp32"])
    assert isinstance(onnx_model, Ensemble) and all(isinstance(m, Cascade) for m in onnx_model.members)
    assert [(m.occupancy.prefix, m.piece.prefix) for m in onnx_model.members] == [
        ("members.0.occupancy.", "members.0.piece."), ("members.1.occupancy.", "members.1.piece.")]
    assert max_probability_difference(load_model(cascade / "pair.ckpt"), onnx_model, crops["test"]) <= PARITY_TOLERANCE
    int8 = load_model(written["onnx_int8"]).predict_proba(crops["test"])
    assert int8.shape == (len(crops["test"]["piece"]), 64, 13) and np.allclose(int8.sum(axis=-1), 1.0, atol=1e-4)


def test_a_cascade_keeps_its_narrower_occupancy_network_in_checkpoint_and_card(cascade):
    torch_model = load_model(cascade / "cascade.ckpt")
    first_convs = {name: next(m for m in stage.network.modules() if isinstance(m, torch.nn.Conv2d)).out_channels
                   for name, stage in (("occupancy", torch_model.occupancy), ("piece", torch_model.piece))}
    assert first_convs == {"occupancy": 4, "piece": 8}
    assert torch_model.card.architecture["occupancy_width"] == 4


def test_onnx_file_carries_the_model_card_and_crop_spec(trained, exported):
    proto = onnx.load(str(exported["onnx_fp32"]))
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    torch_model = load_model(trained / "model.ckpt")
    assert card["class_names"] == list(torch_model.class_names)
    assert load_model(exported["onnx_fp32"]).crop_specs == torch_model.crop_specs


def test_int8_scores_the_test_split_like_fp32_and_is_smaller(trained, exported):
    assert exported["onnx_int8"] == int8_path(trained / "model.onnx")
    features = load_features(trained / "features" / "test")
    variants = {name: Variant(OnnxSquareModel(path, threads=1), path) for name, path in exported.items()}
    results = score_variants(variants, features, "constrained", DecodeOptions(), {"sample_interval_s": 0.05})
    fp32, int8 = results["onnx_fp32"], results["onnx_int8"]
    assert int8["size_kb"] < 0.75 * fp32["size_kb"]  # the card and graph overhead weigh much in a tiny net
    assert abs(int8["square_acc"] - fp32["square_acc"]) <= 0.02  # a 2-epoch model: the stage reports the real drop
    assert 0 < int8["max_prob_diff"] < 0.5


def test_recognize_runs_on_the_onnx_model_like_on_the_checkpoint(trained, exported):
    from chessrec.datasets import load_dataset

    sample = load_dataset("synthetic", trained / "raw").samples[0]
    from chessrec.imageio import read_rgb

    image = read_rgb(sample.image_path)
    by_ckpt = recognize(image, corners=sample.corners, model=trained / "model.ckpt")
    by_onnx = recognize(image, corners=sample.corners, model=exported["onnx_fp32"])
    assert by_onnx.fen == by_ckpt.fen
    np.testing.assert_allclose(by_onnx.probabilities, by_ckpt.probabilities, atol=PARITY_TOLERANCE)


def test_onnx_inference_never_imports_torch(exported):
    script = f"""
import sys, numpy as np
from chessrec.inference.loader import load_model
m = load_model({str(exported['onnx_int8'])!r})
h, w = m.crop_specs['square'].output_shape
p = m.predict_proba({{'square': np.zeros((1, 64, 3, h, w), np.uint8)}})
assert p.shape == (1, 64, 13)
assert 'torch' not in sys.modules, 'torch imported'
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_broken_and_foreign_onnx_files_get_one_line_errors(exported, tmp_path):
    good = exported["onnx_fp32"].read_bytes()
    truncated = _bad(tmp_path, "cut.onnx", good[: len(good) // 2])
    garbage = _bad(tmp_path, "garbage.onnx", b"not a model at all")
    proto = onnx.load(str(exported["onnx_fp32"]))
    del proto.metadata_props[:]
    no_card = _bad(tmp_path, "nocard.onnx", proto.SerializeToString())
    # a foreign graph: the same card, but the crops input of another shape
    foreign = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Cast", ["crops"], ["c"], to=onnx.TensorProto.FLOAT),
         onnx.helper.make_node("ReduceMean", ["c"], ["probabilities"], keepdims=0)],
        "foreign", [onnx.helper.make_tensor_value_info("crops", onnx.TensorProto.UINT8, ["n", 3, 99, 99]),
                    onnx.helper.make_tensor_value_info("squares", onnx.TensorProto.INT64, ["n"])],
        [onnx.helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["n", 99])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    foreign.metadata_props.extend(onnx.load(str(exported["onnx_fp32"])).metadata_props)
    wrong_shape = _bad(tmp_path, "foreign.onnx", foreign.SerializeToString())
    for path, expected in ((truncated, "not a usable ONNX model"), (garbage, "not a usable ONNX model"),
                           (no_card, "not a chessrec model"), (wrong_shape, "card's crop spec needs")):
        with pytest.raises(UserError, match=expected) as info:
            load_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_export_cli_writes_verified_files_and_refuses_int8_without_crops(trained, tmp_path):
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "m.onnx"
    ok = subprocess.run([sys.executable, "-m", "chessrec.cli", "export", str(trained / "model.ckpt"), "--out", str(out),
                         "--int8", "--crops", str(trained / "features" / "train")],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and int8_path(out).is_file() and "verified" in ok.stdout
    refused = subprocess.run([sys.executable, "-m", "chessrec.cli", "export", str(trained / "model.ckpt"),
                              "--out", str(tmp_path / "x.onnx"), "--int8"], capture_output=True, text=True, env=env,
                             cwd=tmp_path)
    assert refused.returncode == 2 and "int8 needs training crops" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()


def test_report_shows_each_exported_artefact_as_its_own_row():
    metrics = {"dvclive/train/metrics.json": {"data": {"energy": {"fit_j": 100, "measured": 1}}},
               "dvclive/evaluate/metrics.json": {"data": {"board_acc": 0.5, "latency": {"model_p50_ms": 4.0},
                                                          "decoders": {"constrained": {"latency_p50_ms": 0.5}}}},
               "dvclive/export/metrics.json": {"data": {
                   "torch": {"board_acc": 0.5, "latency_p50_ms": 5.0},
                   "onnx_int8": {"board_acc": 0.49, "board_acc_low": 0.42, "board_acc_high": 0.56,
                                 "latency_p50_ms": 1.5, "energy_j_per_board": 0.02, "energy_measured": 0}}}}
    data = {"params": {"params.yaml": {"data": {"evaluate": {"best_decoder": "constrained"}}}}, "metrics": metrics}
    records = [{"rev": "abc", "name": "main", "data": data, "experiments": None}]
    rows = {r.name: r for r in parse_exp_show(records).rows}
    assert set(rows) == {"main", "main · torch", "main · onnx_int8"}
    int8 = rows["main · onnx_int8"]
    assert int8.latency_ms == pytest.approx(2.0) and int8.board_acc == 0.49 and int8.train_energy_j == 100
    assert int8.inference_energy_measured is False and int8.params["export.artefact"] == "onnx_int8"

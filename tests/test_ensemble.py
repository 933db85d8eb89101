"""Ensembles: several trained checkpoints in one file that every caller loads as one model.

The members are real checkpoints written by the project's training code; the file is written by
``chessrec ensemble`` and read back by the one loader.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chessrec.config import validate_params
from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.features import write_arrays
from chessrec.inference.card import CARD_KEY, SQUARE_CROPS
from chessrec.inference.ensemble import Ensemble, combine_files
from chessrec.inference.loader import load_model
from chessrec.inference.views import MirrorAveraged, mean_of_views
from chessrec.training import fit


def _trained(root: Path, seed: int, size: int = 8) -> Path:
    """A real checkpoint: one quick epoch of the training code on random plain crops."""
    rng = np.random.default_rng(seed)
    features = root / f"features-{seed}-{size}"
    for split, n in (("train", 6), ("val", 2)):
        write_arrays(features / split, {f"crops_{SQUARE_CROPS}": rng.integers(0, 256, (n, 64, 3, size, size), dtype=np.uint8),
                                        "labels": rng.integers(0, 13, (n, 64))})
    params = validate_params({"seed": seed, "features": {"crop": "plain", "size": size, "mirror": False},
                              "model": {"width": 4}, "train": {"epochs": 1, "batch_size": 256}})
    out = root / f"model-{seed}-{size}.ckpt"
    fit(params, features, out, logger=False, callbacks=[])
    return out


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    return [_trained(root, 1), _trained(root, 2)]


def _crops(n: int = 3, size: int = 8) -> dict[str, np.ndarray]:
    return {SQUARE_CROPS: np.random.default_rng(0).integers(0, 256, (n, 64, 3, size, size), dtype=np.uint8)}


def test_an_ensemble_file_loads_as_one_model_reading_the_geometric_mean_of_its_members(members, tmp_path):
    out = tmp_path / "both.ckpt"
    combine_files(members, out)
    ensemble = load_model(out)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 2
    assert dict(ensemble.crop_specs) == dict(load_model(members[0]).crop_specs)
    crops = _crops()
    one, two = (load_model(m).predict_proba(crops) for m in members)
    assert np.abs(one - two).max() > 1e-3, "two seeds must give two different models"
    expected = mean_of_views(one.reshape(-1, 13), two.reshape(-1, 13)).reshape(one.shape)
    np.testing.assert_allclose(ensemble.predict_proba(crops), expected, atol=1e-6)
    # mirror views of an ensemble: the geometric mean of all four readings
    mirrored = {k: v[..., ::-1] for k, v in crops.items()}
    four = [load_model(m).predict_proba(c).reshape(-1, 13) for m in members for c in (crops, mirrored)]
    np.testing.assert_allclose(MirrorAveraged(ensemble).predict_proba(crops),
                               mean_of_views(*four).reshape(one.shape), atol=1e-5)
    provenance = torch.load(out, weights_only=True)[CARD_KEY]["provenance"]
    assert [m["file"] for m in provenance["ensemble_of"]] == [m.name for m in members]


def test_an_ensemble_combined_with_a_model_lists_all_their_members(members, tmp_path):
    combine_files(members, tmp_path / "two.ckpt")
    combine_files([tmp_path / "two.ckpt", members[0]], tmp_path / "three.ckpt")
    three = load_model(tmp_path / "three.ckpt")
    assert len(three.members) == 3 and not any(isinstance(m, Ensemble) for m in three.members)
    crops = _crops(1)
    np.testing.assert_allclose(three.members[2].predict_proba(crops), load_model(members[0]).predict_proba(crops))


def test_members_that_cut_different_crops_or_missing_files_are_refused_and_nothing_is_written(members, tmp_path):
    other = _trained(tmp_path, 3, size=12)
    out = tmp_path / "bad.ckpt"
    with pytest.raises(UserError, match="ensemble member 1 cuts 'square' crops as") as info:
        combine_files([members[0], other], out)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="nope.ckpt: model file not found"):
        combine_files([members[0], tmp_path / "nope.ckpt"], out)
    with pytest.raises(UserError, match="at least 2 models"):
        combine_files([members[0]], out)
    with pytest.raises(UserError, match="bad.onnx: an ensemble is a checkpoint"):
        combine_files(members, tmp_path / "bad.onnx")
    (tmp_path / "folder.ckpt").mkdir()
    with pytest.raises(UserError, match="folder.ckpt: a folder"):
        combine_files(members, tmp_path / "folder.ckpt")
    before = members[0].read_bytes()
    with pytest.raises(UserError, match="that is one of the models to combine"):
        combine_files(members, members[0])
    assert members[0].read_bytes() == before
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_chessrec_that_predates_ensembles_refuses_the_file_in_one_line_and_still_reads_single_models(
        members, tmp_path, monkeypatch):
    import chessrec.inference.card as card

    combine_files(members, tmp_path / "e.ckpt")
    assert torch.load(tmp_path / "e.ckpt", weights_only=True)[CARD_KEY]["version"] == 3
    assert torch.load(members[0], weights_only=True)[CARD_KEY]["version"] == 2  # single networks keep their layout
    monkeypatch.setattr(card, "CARD_VERSION", 2)  # what the release before ensembles understood
    with pytest.raises(UserError, match=r"e.ckpt: model card version 3 is newer than this chessrec understands"):
        load_model(tmp_path / "e.ckpt")
    assert load_model(members[0]).predict_proba(_crops(1)).shape == (1, 64, 13)


def test_the_ensemble_command_writes_a_model_and_reports_user_mistakes_in_one_line(members, tmp_path):
    run = subprocess.run([sys.executable, "-m", "chessrec.cli", "ensemble", *map(str, members), "--out",
                          str(tmp_path / "e.ckpt")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ensemble of 2 models" in run.stdout and (tmp_path / "e.ckpt").is_file()
    bad = subprocess.run([sys.executable, "-m", "chessrec.cli", "ensemble", str(members[0]), str(tmp_path / "x.ckpt"),
                          "--out", str(tmp_path / "f.ckpt")], capture_output=True, text=True)
    assert bad.returncode == USER_ERROR_EXIT
    assert bad.stderr.strip().count("\n") == 0 and "x.ckpt: model file not found" in bad.stderr
    assert not (tmp_path / "f.ckpt").exists()


def test_an_ensemble_exports_to_one_onnx_file_that_reads_like_its_checkpoint_and_quantises(members, tmp_path):
    from chessrec.deploy.artefacts import export_artefacts
    from chessrec.deploy.onnx_export import PARITY_TOLERANCE, max_probability_difference
    from chessrec.inference.onnx_backend import OnnxSquareModel

    combine_files(members, tmp_path / "e.ckpt")
    written = export_artefacts(tmp_path / "e.ckpt", tmp_path / "e.onnx", _crops(4), int8=True)
    checkpoint = load_model(tmp_path / "e.ckpt")
    for name, path in written.items():
        model = load_model(path)
        assert isinstance(model, Ensemble) and len(model.members) == 2, name
        assert all(isinstance(member, OnnxSquareModel) for member in model.members)
        assert [member.prefix for member in model.members] == ["members.0.", "members.1."]
        assert model.card.to_dict() == checkpoint.card.to_dict()  # the ensemble's card, members and provenance
    crops = _crops(5)
    assert max_probability_difference(checkpoint, load_model(written["onnx_fp32"]), crops) <= PARITY_TOLERANCE
    int8 = load_model(written["onnx_int8"]).predict_proba(crops)
    assert int8.shape == (5, 64, 13) and np.allclose(int8.sum(axis=-1), 1.0, atol=1e-4)

"""``train.init_from``: a run that starts from a trained classifier's weights instead of at random.

The checkpoints are real ones written by the project's training code (a two-stage cascade, as the
profiles train), and the started run is a real Lightning fit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from chessrec.config import validate_params
from chessrec.errors import UserError
from chessrec.features import write_arrays
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
from chessrec.inference.card import CARD_KEY
from chessrec.inference.ensemble import combine_files
from chessrec.training import fit

SIZE = 8  # height-aware crops of 16 x 8 for both stages


def _features(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    features = root / f"features-{seed}"
    for split, n in (("train", 6), ("val", 2)):
        write_arrays(features / split, {
            f"crops_{name}": rng.integers(0, 256, (n, 64, 3, 2 * SIZE, SIZE), dtype=np.uint8)
            for name in (OCCUPANCY_CROPS, PIECE_CROPS)} | {"labels": rng.integers(0, 13, (n, 64))})
    return features


def _params(seed: int, width: int = 8, dropout: float = 0.1, piece_size: int = SIZE, extra_inputs: bool = True, **train):
    return validate_params({"seed": seed, "features": {"size": SIZE, "piece_size": piece_size, "mirror": False,
                                                       "extra_inputs": extra_inputs},
                            "model": {"name": "strided_cnn", "width": width, "occupancy_width": 4, "dropout": dropout},
                            "train": {"epochs": 1, "batch_size": 256, **train}})


def _fit(root: Path, name: str, seed: int, width: int = 8, dropout: float = 0.1, **train) -> Path:
    out = root / f"{name}.ckpt"
    fit(_params(seed, width, dropout, **train), _features(root, seed), out, logger=False, callbacks=[])
    return out


def _conv_weights(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    weights = torch.load(path, weights_only=True)["state_dict"]
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix) and k.endswith("0.0.weight")}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return _fit(tmp_path_factory.mktemp("warm"), "base", seed=1)


def test_a_run_started_from_a_checkpoint_goes_on_from_its_weights_and_records_it(base, tmp_path):
    # at a vanishing learning rate the optimiser moves no weight, so the run ends where it started;
    # dropout acts in training only, so a run with another dropout starts from the same weights
    started = _fit(tmp_path, "started", seed=2, dropout=0.3, lr=1e-12, init_from=str(base))
    fresh = _fit(tmp_path, "fresh", seed=2, lr=1e-12)
    before, after, random = (_conv_weights(p) for p in (base, started, fresh))
    assert before.keys() == after.keys() and len(before) >= 2, "both networks of the cascade are compared"
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-6)
        assert not torch.allclose(random[key], before[key], atol=1e-3), "a random start differs"
    card = torch.load(started, weights_only=True)[CARD_KEY]
    record = card["provenance"]["initialised_from"]
    assert record["file"] == "base.ckpt" and record["member"] is None and record["boards"] == {"train": 6, "val": 2}
    assert record["sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    assert "initialised_from" not in torch.load(fresh, weights_only=True)[CARD_KEY]["provenance"]


def test_an_ensemble_member_is_a_starting_point_when_named(base, tmp_path):
    other = _fit(tmp_path, "other", seed=3)
    both = tmp_path / "both.ckpt"
    combine_files([base, other], both)
    started = _fit(tmp_path, "from-member", seed=2, lr=1e-12, init_from=str(both), init_member=1)
    for key, value in _conv_weights(other).items():
        torch.testing.assert_close(_conv_weights(started)[key], value, rtol=0, atol=1e-6)
    assert torch.load(started, weights_only=True)[CARD_KEY]["provenance"]["initialised_from"]["member"] == 1
    for member in (None, 2):
        with pytest.raises(UserError, match=rf"both\.ckpt: an ensemble of 2 members; set train\.init_member .* not {member}"):
            _fit(tmp_path, "no-member", seed=2, init_from=str(both), init_member=member)


def test_weights_stored_in_float16_start_the_run_widened_to_float32(base, tmp_path):
    checkpoint = torch.load(base, weights_only=True)
    halved = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    torch.save({**checkpoint, "state_dict": halved}, tmp_path / "half.ckpt")
    started = _fit(tmp_path, "from-half", seed=2, lr=1e-12, init_from=str(tmp_path / "half.ckpt"))
    for key, value in _conv_weights(base).items():
        after = _conv_weights(started)[key]
        assert after.dtype == torch.float32
        torch.testing.assert_close(after, value.half().float(), rtol=0, atol=1e-6)


def test_weights_that_do_not_fit_their_own_card_are_refused_naming_the_weight(base, tmp_path):
    checkpoint = torch.load(base, weights_only=True)
    renamed = {k.replace("piece.", "pieces.", 1): v for k, v in checkpoint["state_dict"].items()}
    torch.save({**checkpoint, "state_dict": renamed}, tmp_path / "renamed.ckpt")
    with pytest.raises(UserError, match=r"renamed\.ckpt: weights do not fit .*piece") as refused:
        _fit(tmp_path, "never", seed=2, init_from=str(tmp_path / "renamed.ckpt"))
    assert "\n" not in str(refused.value) and not (tmp_path / "never.ckpt").exists()


@pytest.mark.parametrize("change, message", [
    ({"width": 16}, r"base\.ckpt: its architecture .* is not this run's"),
    ({"piece_size": 10}, r"base\.ckpt: its crop specs .* is not this run's"),  # weights that would load, for other crops
    ({"extra_inputs": False}, r"base\.ckpt: its preprocessing .* is not this run's"),
    ({"init_member": 0}, r"one model, not an ensemble; leave train\.init_member null"),
    ({"missing": True}, r"nowhere\.ckpt: no such checkpoint"),
])
def test_a_starting_point_that_does_not_fit_is_refused_in_one_line_before_training(base, tmp_path, change, message):
    change = dict(change)
    init_from = str(tmp_path / "nowhere.ckpt") if change.pop("missing", False) else str(base)
    out = tmp_path / "never.ckpt"
    width = change.pop("width", 8)
    with pytest.raises(UserError, match=message) as refused:
        fit(_params(2, width, init_from=init_from, **change), _features(tmp_path, 2), out, logger=False, callbacks=[])
    assert "\n" not in str(refused.value) and not out.exists()


def test_a_member_without_a_checkpoint_is_refused_with_the_params_before_any_stage_runs():
    with pytest.raises(UserError, match="^params.yaml: train.init_member is 0 but train.init_from names no checkpoint$"):
        validate_params({"train": {"init_member": 0}}, "params.yaml")

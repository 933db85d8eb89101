"""Square classifier architectures, and a trained checkpoint carrying its model card."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from dvclive.lightning import DVCLiveLogger

from chessrec.config import validate_params
from chessrec.features import write_arrays
from chessrec.inference.card import SQUARE_CROPS
from chessrec.inference.loader import load_model
from chessrec.models import ARCHITECTURES, SquareClassifier, square_inputs
from chessrec.training import fit


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("head", ["single", "two_stage"])
def test_every_architecture_returns_normalised_log_probabilities(name, head):
    net = SquareClassifier(name, width=8, dropout=0.0, head=head, extra_inputs=True).eval()
    log_probs = net(torch.rand(5, 3, 48, 24), torch.tensor([0, 9, 27, 54, 63]))
    assert log_probs.shape == (5, 13)
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(5))


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_trains_channels_last_on_an_odd_batch_without_crashing(name):
    """A stride-2 1x1 conv's channels-last backward corrupted the heap on a batch of 65 (torch 2.13 on CPU).

    Run in a child process: a heap corruption aborts the interpreter, which must fail this test, not pytest.
    """
    probe = (
        "import torch, torch.nn.functional as F\n"
        "from chessrec.models import SquareClassifier\n"
        "from chessrec.inference.torch_backend import preprocess\n"
        f"net = SquareClassifier({name!r}, 8, 0.0, 'single', True).to(memory_format=torch.channels_last)\n"
        "for batch in (256, 65, 65):\n"
        "    x = preprocess(torch.randint(0, 256, (batch, 3, 32, 16), dtype=torch.uint8))\n"
        "    F.nll_loss(net(x, torch.randint(0, 64, (batch,))), torch.randint(0, 13, (batch,))).backward()\n"
        "print('trained')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]


def test_resnet_projection_is_a_stride_two_pointwise_conv():
    net = SquareClassifier("resnet18", width=8, dropout=0.0, head="single", extra_inputs=False).eval()
    block = next(m for m in net.modules() if type(m).__name__ == "_BasicBlock" and m.stride == 2)
    conv, bn = block.shortcut
    x = torch.rand(3, conv.in_channels, 16, 8)
    expected = bn(torch.nn.functional.conv2d(x, conv.weight, stride=2))
    torch.testing.assert_close(block.shortcut(x[:, :, ::2, ::2]), expected)


def test_square_inputs_encode_colour_rank_and_file():
    inputs = square_inputs(torch.tensor([0, 7, 63]))  # a1 dark, h1 light, h8 dark
    torch.testing.assert_close(inputs, torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))


def _separable_features(path, n_boards, rng):
    labels = rng.integers(0, 13, size=(n_boards, 64))
    crops = (labels[:, :, None, None, None] * 18 + rng.integers(0, 10, size=(n_boards, 64, 3, 8, 8))).astype(np.uint8)
    write_arrays(path, {f"crops_{SQUARE_CROPS}": crops, "labels": labels})
    return crops, labels


def test_trained_checkpoint_predicts_and_carries_its_model_card(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "f").mkdir()
    _separable_features(tmp_path / "f/train", 24, rng)
    crops, _ = _separable_features(tmp_path / "f/val", 4, rng)
    params = validate_params({"features": {"crop": "plain", "size": 8}, "model": {"width": 4},
                              "train": {"epochs": 1, "batch_size": 128}})
    logger = DVCLiveLogger(dir=str(tmp_path / "live"), report=None, save_dvc_exp=False, dvcyaml=False)
    fit(params, tmp_path / "f", tmp_path / "m.ckpt", logger, callbacks=[])

    model = load_model(tmp_path / "m.ckpt")
    assert model.crop_specs == params.features.crop_specs()
    card = model.card
    assert card.architecture == {"name": "tiny_cnn", "width": 4, "dropout": 0.1, "head": "single"}
    assert card.class_names[-1] == "empty" and len(card.class_names) == 13
    assert card.provenance["params"]["train"]["epochs"] == 1
    assert card.provenance["boards"] == {"train": 24, "val": 4}
    assert 0.0 <= card.provenance["validation"]["val/acc"] <= 1.0
    probs = model.predict_proba({SQUARE_CROPS: crops})
    assert probs.shape == (4, 64, 13)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    assert (tmp_path / "live/metrics.json").is_file()


def test_loading_a_missing_or_foreign_checkpoint_is_a_user_error(tmp_path):
    from chessrec.errors import UserError

    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a chessrec checkpoint"):
        load_model(tmp_path / "bad.ckpt")


def test_photometric_jitter_mirrors_the_flipped_crops_and_keeps_the_rest_an_affine_map_plus_noise():
    """Every crop comes out either as itself or mirrored, under one gain, colour balance and bias of
    the set ranges, with zero-mean noise of 0.02; the batch stays channels-last for the convolutions."""
    from chessrec.training import photometric_jitter

    x = torch.rand(64, 3, 20, 10).contiguous(memory_format=torch.channels_last)
    out = photometric_jitter(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    mirrored = 0
    for crop, jittered in zip(x, out):
        candidates = {"as cut": crop, "mirrored": crop.flip(-1)}
        fits = {}
        for name, source in candidates.items():  # least squares per channel: jittered = scale * source + offset
            design = torch.stack([source.flatten(1), torch.ones_like(source.flatten(1))], dim=-1)
            solution = torch.linalg.lstsq(design, jittered.flatten(1).unsqueeze(-1)).solution.squeeze(-1)
            residual = jittered.flatten(1) - (design @ solution.unsqueeze(-1)).squeeze(-1)
            fits[name] = (solution, float(residual.std()))
        name = min(fits, key=lambda n: fits[n][1])
        (scale, offset), noise = fits[name][0].T, fits[name][1]
        mirrored += name == "mirrored"
        assert 0.015 < noise < 0.025
        assert torch.all((scale > 0.75 * 0.92 - 0.02) & (scale < 1.25 * 1.08 + 0.02))
        assert torch.all(offset.abs() < 0.08 + 0.01)
        assert float(scale.max() / scale.min()) < 1.08 / 0.92 + 0.02  # one gain, a small colour balance
    assert 16 < mirrored < 48  # about half


def test_native_bf16_precision_trains_in_bfloat16_only_where_the_hardware_runs_it(monkeypatch):
    """``bf16-mixed-if-native`` must not put a CPU without bfloat16 units on emulated bfloat16,
    which took 9x a float32 step with AVX2 (benchmarks/bench_training.py, ONEDNN_MAX_CPU_ISA)."""
    from chessrec import training

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert training.resolve_precision("bf16-mixed-if-native", "cpu") == "32-true"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert training.resolve_precision("bf16-mixed-if-native", "cpu") == "bf16-mixed"
    assert training.resolve_precision("32-true", "cpu") == "32-true"  # an explicit precision is Lightning's own
    assert training.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.resolve_precision("bf16-mixed-if-native", "gpu") == "32-true"

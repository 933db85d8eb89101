"""Square classifier architectures, and a trained checkpoint carrying its model card."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from dvclive.lightning import DVCLiveLogger

from torch.nn import functional as F

from chessrec.config import validate_params
from chessrec.features import load_features, write_arrays
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
from chessrec.inference.card import SQUARE_CROPS
from chessrec.inference.loader import load_model
from chessrec.inference.torch_backend import preprocess
from chessrec.labels import EMPTY
from chessrec.models import ARCHITECTURES, SquareClassifier, square_inputs
from chessrec.training import CascadeModule, SquareSamples, as_batch, cascade_datasets, fit, model_card


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


def test_photometric_jitter_is_the_preprocessing_under_one_affine_map_per_crop_plus_the_given_noise():
    """Raw pixels in, channels-last network input out: per crop, ``scale * (x / 255 - 0.5) + offset``
    with one gain, a small colour balance and a bias of the set ranges, plus exactly the noise given."""
    from chessrec.jitter import NoiseBank, photometric_jitter

    x = torch.rand(64, 3, 20, 10) * 255
    noise = NoiseBank().draw(x.shape, torch.Generator().manual_seed(1))
    assert 0.018 < float(noise.std()) < 0.022 and len({float(n.sum()) for n in noise}) > 32  # a field per crop
    out = photometric_jitter(x, noise, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    clean, normalised = (out - noise).flatten(2), (x / 255 - 0.5).flatten(2)
    for source, jittered in zip(normalised, clean):  # per channel: jittered = scale * source + offset
        design = torch.stack([source, torch.ones_like(source)], dim=-1)
        solution = torch.linalg.lstsq(design, jittered.unsqueeze(-1)).solution.squeeze(-1)
        residual = jittered - (design @ solution.unsqueeze(-1)).squeeze(-1)
        assert float(residual.abs().max()) < 1e-4
        scale, offset = solution.T
        assert torch.all((scale > 0.75 * 0.92 - 1e-4) & (scale < 1.25 * 1.08 + 1e-4))
        assert torch.all(offset.abs() < 0.08 + 1e-4)
        assert float(scale.max() / scale.min()) < 1.08 / 0.92 + 1e-4  # one gain, a small colour balance


def test_jittered_crops_without_geometric_jitter_are_each_the_crop_or_its_mirror_about_half_mirrored():
    """The mirror rides in the resampling's affine map: with no shift, zoom or turn each crop comes
    back exactly as cut or exactly mirrored."""
    from chessrec.jitter import CropJitter, crop_affines, resample

    x = torch.rand(64, 3, 20, 10)
    out = resample(x, crop_affines(64, 20, 10, CropJitter(), mirror=True, generator=torch.Generator().manual_seed(0)))
    mirrored = 0
    for crop, resampled in zip(x, out):
        as_cut, flipped = float((resampled - crop).abs().max()), float((resampled - crop.flip(-1)).abs().max())
        assert min(as_cut, flipped) < 1e-5
        mirrored += flipped < 1e-5
    assert 16 < mirrored < 48
    unmirrored = resample(x, crop_affines(64, 20, 10, CropJitter(), mirror=False))
    assert float((unmirrored - x).abs().max()) < 1e-5


def test_sampling_grid_is_affine_grids_grid():
    from chessrec.jitter import sampling_grid

    theta = torch.randn(16, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [16, 3, 80, 40], align_corners=False)
    assert torch.allclose(sampling_grid(theta, 80, 40), expected, atol=1e-5)


def _bright_spot(crops: torch.Tensor) -> torch.Tensor:
    """(B, 2) row and column of each crop's brightest pixel (channel 0)."""
    flat = crops[:, 0].flatten(1).argmax(dim=1)
    return torch.stack([flat // crops.shape[-1], flat % crops.shape[-1]], dim=1).float()


def _jittered(x: torch.Tensor, jitter, generator: torch.Generator) -> torch.Tensor:
    from chessrec.jitter import crop_affines, resample

    return resample(x, crop_affines(x.shape[0], x.shape[2], x.shape[3], jitter, mirror=False, generator=generator))


def test_geometric_jitter_moves_each_crop_within_the_set_shift():
    """A crop showing one bright spot at its centre: shifted crops carry it at most the set fraction
    of the crop's height and width away (one pixel more for the interpolation), and not all by the
    same amount."""
    from chessrec.jitter import CropJitter

    x = torch.zeros(64, 3, 40, 20)
    x[:, :, 20, 10] = 1.0
    out = _jittered(x, CropJitter(shift=0.1), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    moved = _bright_spot(out) - torch.tensor([20.0, 10.0])
    assert torch.all(moved[:, 0].abs() <= 0.1 * 40 + 1) and torch.all(moved[:, 1].abs() <= 0.1 * 20 + 1)
    assert len({tuple(m) for m in moved.tolist()}) > 8  # each crop its own shift


def test_geometric_jitter_zooms_and_turns_about_the_crop_centre():
    """Zoom and rotation alone keep a spot at the centre where it is and move a spot off the centre
    along its ray (zoom) or across it (rotation), by no more than the set amounts."""
    from chessrec.jitter import CropJitter

    x = torch.zeros(32, 3, 81, 41)
    x[:, :, 40, 20] = 1.0  # the centre pixel
    x[:, :, 10, 20] = 0.5  # 30 px above it
    generator = torch.Generator().manual_seed(1)
    zoomed = _jittered(x, CropJitter(zoom=0.2), generator)
    assert torch.all(_bright_spot(zoomed) == torch.tensor([40.0, 20.0]))
    above = zoomed[:, 0, :35, 20].argmax(dim=1).float()  # the upper spot stays on the centre column
    assert torch.all((40 - above >= 30 / 1.2 - 1) & (40 - above <= 30 / 0.8 + 1))
    turned = _jittered(x, CropJitter(rotation_deg=10.0), generator)
    assert torch.all(_bright_spot(turned) == torch.tensor([40.0, 20.0]))
    upper = turned[:, 0, :35].flatten(1).argmax(dim=1)
    sideways = (upper % 41 - 20).float().abs()
    assert torch.all(sideways <= 30 * math.sin(math.radians(10)) + 1) and sideways.max() >= 2


def test_training_input_is_seeded_channels_last_and_roughly_normalised():
    """The module's jitter of uint8 crops: the same seed gives the same batch, the input the
    networks read (channels-last, about -0.5..0.5, as at inference)."""
    from chessrec.jitter import CropJitter, NoiseBank, jitter_crops
    from chessrec.inference.card import Preprocessing

    crops = torch.randint(0, 256, (32, 3, 80, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    runs = [jitter_crops(crops, CropJitter(0.06, 0.1), NoiseBank(), Preprocessing(), torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    out = runs[0]
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    assert -0.85 < float(out.min()) and float(out.max()) < 0.85 and abs(float(out.mean())) < 0.1


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


def test_training_is_strictly_deterministic_on_a_cpu_and_warns_only_on_a_gpu(monkeypatch):
    """CUDA has no deterministic backward for the adaptive pooling every network ends in: strict
    determinism raises there at the first backward (the `full` profile's run on an H200 warned at exactly that
    kernel under warn-only); a CPU run stays strict."""
    from chessrec import training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.determinism("cpu") is True and training.determinism("auto") is True
    assert training.determinism("gpu") == "warn" and training.determinism("cuda") == "warn"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training.determinism("auto") == "warn"


def _cascade_features(path, n_boards, rng):
    labels = rng.integers(0, 13, size=(n_boards, 64))
    labels[:, rng.random(64) < 0.5] = EMPTY  # about half the squares empty, as on a board
    arrays = {"labels": labels,
              f"crops_{OCCUPANCY_CROPS}": rng.integers(0, 256, (n_boards, 64, 3, 12, 6), dtype=np.uint8),
              f"crops_{PIECE_CROPS}": rng.integers(0, 256, (n_boards, 64, 3, 16, 8), dtype=np.uint8)}
    write_arrays(path, arrays)
    return arrays


def test_training_sets_from_memory_mapped_features_equal_those_read_into_memory(tmp_path):
    """Training maps the feature files and copies only the squares it keeps; the samples are the same."""
    arrays = _cascade_features(tmp_path / "train", 6, np.random.default_rng(1))
    mapped, read = load_features(tmp_path / "train", mmap=True), load_features(tmp_path / "train")
    assert isinstance(mapped["crops_piece"], np.memmap) and not isinstance(read["crops_piece"], np.memmap)
    for a, b in zip(cascade_datasets(mapped, 0.3, 7).values(), cascade_datasets(read, 0.3, 7).values()):
        for x, y in zip(a.tensors, b.tensors):
            assert torch.equal(x, y)
    pieces = cascade_datasets(mapped, 0.3, 7)["piece"]
    occupied = arrays["labels"].reshape(-1) != EMPTY
    assert len(pieces) == occupied.sum() and bool((pieces.tensors[2] != EMPTY).all())
    np.testing.assert_array_equal(pieces.tensors[0].numpy(), arrays["crops_piece"].reshape(-1, 3, 16, 8)[occupied])
    np.testing.assert_array_equal(pieces.tensors[1].numpy(), np.tile(np.arange(64), 6)[occupied])


def test_batched_square_loader_yields_the_batches_of_a_sample_by_sample_loader():
    """Fetching a batch in one indexing changes how fast batches come, not which samples they hold."""
    from torch.utils.data import DataLoader, TensorDataset

    tensors = (torch.randint(0, 256, (300, 3, 8, 4), dtype=torch.uint8), torch.randint(0, 64, (300,)),
               torch.randint(0, 13, (300,)))
    torch.manual_seed(3)
    batched = [b for b in DataLoader(SquareSamples(*tensors), batch_size=64, shuffle=True, collate_fn=as_batch)]
    torch.manual_seed(3)
    one_by_one = [b for b in DataLoader(TensorDataset(*tensors), batch_size=64, shuffle=True)]
    assert [len(b[0]) for b in batched] == [64, 64, 64, 64, 44]
    for ours, theirs in zip(batched, one_by_one, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(ours, theirs, strict=True))


def test_cascade_validation_scores_as_the_full_cascade_with_the_piece_network_on_fewer_squares():
    """Validation skips the piece network where empty wins anyway; loss and accuracy are the full cascade's."""
    params = validate_params({"features": {"size": 8, "piece_size": 12}, "model": {"name": "strided_cnn", "width": 4}})
    module = CascadeModule(model_card(params).to_dict(), 0.01, 0.0).eval()
    rng = np.random.default_rng(2)
    occupancy_x = preprocess(torch.from_numpy(rng.integers(0, 256, (200, 3, 16, 8), dtype=np.uint8)))
    piece_x = preprocess(torch.from_numpy(rng.integers(0, 256, (200, 3, 24, 12), dtype=np.uint8)))
    squares = torch.from_numpy(rng.integers(0, 64, 200))
    labels = torch.from_numpy(np.where(rng.random(200) < 0.5, EMPTY, rng.integers(0, 12, 200)))
    with torch.no_grad():
        torch.nn.init.constant_(module.occupancy.head[-1].bias, 0.0)
        module.occupancy.head[-1].bias[0] = 0.3  # some squares read as empty, some as occupied
        full = module(occupancy_x, piece_x, squares)
        pieces_run = []
        hook = module.piece.register_forward_hook(lambda m, i, o: pieces_run.append(len(o)))
        scored = module.scoring_log_probs(occupancy_x, piece_x, squares, labels)
        hook.remove()
    assert 0 < pieces_run[0] < 200
    torch.testing.assert_close(F.nll_loss(scored, labels), F.nll_loss(full, labels))
    assert torch.equal(scored.argmax(dim=1), full.argmax(dim=1))
    truth = full.gather(1, labels[:, None])
    torch.testing.assert_close(scored.gather(1, labels[:, None]), truth)

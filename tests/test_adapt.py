"""Adapting the classifier to a user's own set (issue 13): real Lightning, real renders, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from dvclive.lightning import DVCLiveLogger

from chessrec.geometry import a1_corner_of
from chessrec.adapt.finetune import finetune, score_photos
from chessrec.adapt.augment import augmented_crops
from chessrec.adapt.finetune import with_random_squares
from chessrec.adapt.photos import START_LABELS, SetPhoto, contradicted_squares, photos_from_folder
from chessrec.config import FinetuneConfig, validate_params
from chessrec.errors import UserError
from chessrec.features import write_arrays
from chessrec.fileio import file_digest
from chessrec.geometry import CropSpec, square_crops
from chessrec.inference.card import CARD_KEY, ModelCard
from chessrec.inference.ensemble import Ensemble, combine_files, member_cards
from chessrec.inference.loader import RELEASED_MODEL, load_model
from chessrec.labels import EMPTY, fen_from_labels, labels_from_fen
from chessrec.models import square_inputs
from chessrec.synth.positions import game_positions
from chessrec.synth.render import ChessSet, render_board
from chessrec.training import fit

HELD_OUT = ChessSet(style="modern", pieces="red-cream", board="grey", girth=1.0)
SEEN_STYLES = ("staunton", "club")


def write_set(folder: Path, positions: list[np.ndarray], seeds: list[int], chess_set: ChessSet, size: int) -> list[SetPhoto]:
    """Renders of a set as a chesscog-style folder (JPEGs + labels.json with exact corners), read back."""
    folder.mkdir(parents=True, exist_ok=True)
    records = {}
    for index, (labels, seed) in enumerate(zip(positions, seeds)):
        render = render_board(labels, seed, size, with_ids=False, chess_set=chess_set)
        name = f"photo_{index:03d}.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(render.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        records[name] = {"corners": render.corners.tolist(), "fen": fen_from_labels(labels), "a1": a1_corner_of(render.corners)}
    (folder / "labels.json").write_text(json.dumps(records))
    return photos_from_folder(folder)


@pytest.fixture(scope="module")
def base_without_modern(tmp_path_factory) -> Path:
    """A small cascade trained by the real training code on renders of the staunton and club styles only."""
    root = tmp_path_factory.mktemp("base")
    params = validate_params({"seed": 3, "features": {"crop": "plain", "size": 16, "piece_size": 20},
                              "model": {"name": "strided_cnn", "width": 12},
                              "train": {"epochs": 6, "batch_size": 128, "lr": 0.004, "empty_keep": 0.3}})
    specs = params.features.crop_specs()
    rng = np.random.default_rng(5)
    for split, n in (("train", 72), ("val", 8)):
        positions = [p for _ in range(n // 8) for p in game_positions(rng, 8)][:n]
        crops = {name: [] for name in specs}
        for i, labels in enumerate(positions):
            render = render_board(labels, 1000 * (split == "val") + i, 320, with_ids=False,
                                  chess_set=ChessSet(style=SEEN_STYLES[i % 2]))
            for name, spec in specs.items():
                crops[name].append(square_crops(render.image, render.corners, spec))
        write_arrays(root / "features" / split, {**{f"crops_{k}": np.stack(v) for k, v in crops.items()},
                                                 "labels": np.stack(positions)})
    logger = DVCLiveLogger(dir=str(root / "live"), report=None, save_dvc_exp=False, dvcyaml=False)
    fit(params, root / "features", root / "base.ckpt", logger, callbacks=[])
    return root / "base.ckpt"


@pytest.fixture(scope="module")
def modern_set(tmp_path_factory) -> tuple[list[SetPhoto], list[SetPhoto]]:
    """The held-out style on its board under two fixed cameras (a render's seed fixes its scene): one
    render of the starting position from each camera to adapt on, twelve game positions to score."""
    root = tmp_path_factory.mktemp("modern")
    cameras = [71, 72]
    adapt = write_set(root / "adapt", [START_LABELS, START_LABELS], cameras, HELD_OUT, 320)
    positions = [p for _ in range(3) for p in game_positions(np.random.default_rng(9), 4)]
    test = write_set(root / "test", positions, cameras * 6, HELD_OUT, 320)
    return adapt, test


@pytest.mark.slow
def test_adapting_on_two_renders_of_a_held_out_style_lifts_its_accuracy(base_without_modern, modern_set, tmp_path):
    adapt, test = modern_set
    out = tmp_path / "adapted.ckpt"
    # rehearsal renders only the styles the base was trained on: the held-out one is learnt from the two photos
    options = FinetuneConfig(steps=120, copies=16, rehearsal_styles=list(SEEN_STYLES))
    adapted = finetune(base_without_modern, adapt, out, options, check_labels=False)
    before = score_photos(base_without_modern, test)["constrained"]
    after = score_photos(out, test)["constrained"]
    print(f"\nheld-out style ({HELD_OUT.style}), {len(test)} test renders: squares {before['square_acc']:.4f} -> "
          f"{after['square_acc']:.4f}, errors per board {before['errors_per_board']:.2f} -> "
          f"{after['errors_per_board']:.2f} ({adapted.fit_s:.0f} s of adaptation)")
    assert after["square_acc"] >= before["square_acc"] + 0.02  # measured here: 79.3% -> 83.2%
    assert after["errors_per_board"] < before["errors_per_board"]


def test_an_adapted_checkpoint_records_its_base_and_photos_and_loads_like_any_model(modern_set, tmp_path):
    adapt, test = modern_set
    out = tmp_path / "my-set.ckpt"
    finetune(RELEASED_MODEL, adapt, out, FinetuneConfig(steps=2, copies=2, batch_size=64, rehearsal=2),
             check_labels=False)
    card = torch.load(out, map_location="cpu", weights_only=True)[CARD_KEY]
    provenance = card["provenance"]
    assert provenance["adapted_from"]["file"] == RELEASED_MODEL.name
    assert provenance["adapted_from"]["sha256"] == file_digest(RELEASED_MODEL)
    assert [p["sha256"] for p in provenance["adapted_on"]] == [file_digest(p.path) for p in adapt]
    assert [p["file"] for p in provenance["adapted_on"]] == [p.path.name for p in adapt]
    assert provenance["adapted_on"][0]["fen"] == fen_from_labels(START_LABELS)
    assert provenance["finetune"]["steps"] == 2 and provenance["finetune"]["energy_j"] > 0
    base_card = torch.load(RELEASED_MODEL, map_location="cpu", weights_only=True)[CARD_KEY]
    # the same crops and networks as the base, member by member (the base's card was written before
    # CropSpec.footprint existed: it reads with the default its crops were cut with, and is saved with it)
    adapted, base = (ModelCard.from_dict(c) for c in (card, base_card))
    assert adapted.crop_specs == base.crop_specs
    assert [(m.architecture, m.crop_specs) for m in member_cards(adapted, "adapted")] == \
        [(m.architecture, m.crop_specs) for m in member_cards(base, "base")]
    assert out.stat().st_mode & 0o777 == 0o644 and not list(tmp_path.glob(".*.tmp"))
    weights = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    base_weights = torch.load(RELEASED_MODEL, map_location="cpu", weights_only=True)["state_dict"]
    assert weights.keys() == base_weights.keys()
    assert any(not torch.equal(weights[k], base_weights[k]) for k in weights), "two steps must move the weights"
    model = load_model(out)
    assert dict(model.crop_specs) == dict(load_model(RELEASED_MODEL).crop_specs)
    assert score_photos(model, test[:2])["constrained"]["boards"] == 2


def test_adapting_an_ensemble_adapts_every_member_on_the_same_photos(modern_set, tmp_path):
    adapt, test = modern_set
    base = tmp_path / "pair.ckpt"
    combine_files([RELEASED_MODEL, RELEASED_MODEL], base)
    out = tmp_path / "pair-adapted.ckpt"
    finetune(base, adapt, out, FinetuneConfig(steps=2, copies=2, batch_size=64, rehearsal=2), check_labels=False)
    model, base_model = load_model(out), load_model(base)
    assert isinstance(model, Ensemble) and len(model.members) == len(base_model.members) >= 2
    weights = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    base_weights = torch.load(base, map_location="cpu", weights_only=True)["state_dict"]
    assert weights.keys() == base_weights.keys()
    for index in range(len(model.members)):
        own = [key for key in weights if key.startswith(f"members.{index}.")]
        assert own and any(not torch.equal(weights[k], base_weights[k]) for k in own), f"member {index} did not move"
    provenance = torch.load(out, map_location="cpu", weights_only=True)[CARD_KEY]["provenance"]
    assert provenance["adapted_from"]["sha256"] == file_digest(base)
    assert score_photos(model, test[:2])["constrained"]["boards"] == 2


def _chessrec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chessrec.cli", *args], cwd=cwd, capture_output=True, text=True)


def _start_photos_with_board_found(folder: Path, n: int) -> list[tuple[Path, str]]:
    """Renders of the starting position whose board the localiser finds, with the a1 corner of each."""
    from chessrec.recognize import Recognizer

    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for seed in range(40):
        render = render_board(START_LABELS, seed, 640, with_ids=False, chess_set=HELD_OUT)
        try:
            Recognizer(RELEASED_MODEL).locate(render.image)
        except UserError:
            continue
        path = folder / f"start_{seed}.png"
        cv2.imwrite(str(path), cv2.cvtColor(render.image, cv2.COLOR_RGB2BGR))
        found.append((path, a1_corner_of(render.corners)))
        if len(found) == n:
            return found
    raise AssertionError("the localiser found too few rendered boards")


@pytest.mark.slow
def test_finetune_command_adapts_from_start_position_photos_and_predict_uses_the_result(tmp_path):
    photos = _start_photos_with_board_found(tmp_path / "photos", 2)
    out = tmp_path / "models" / "my-set.ckpt"
    args = ["finetune", *(str(p) for p, _ in photos), "--start-position", "--out", str(out), "--steps", "3",
            "--copies", "2", "--model", str(RELEASED_MODEL)]
    for _, a1 in photos:
        args += ["--a1", a1]
    result = _chessrec(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stdout
    located = torch.load(out, map_location="cpu", weights_only=True)[CARD_KEY]["provenance"]["adapted_on"]
    assert all(p["corners_located"] for p in located)
    predicted = _chessrec("predict", str(photos[0][0]), "--model", str(out), "--a1", photos[0][1], cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert (labels_from_fen(predicted.stdout.strip()) == START_LABELS).sum() >= 56  # a photo it adapted on

    # the same photos with a1 in the opposite corner: the colours contradict the labels
    opposite = {"bottom-left": "top-right", "top-right": "bottom-left", "top-left": "bottom-right",
                "bottom-right": "top-left"}
    wrong = args[:args.index("--a1")] + [x for _, a1 in photos for x in ("--a1", opposite[a1])]
    wrong[wrong.index("--out") + 1] = str(tmp_path / "wrong.ckpt")
    refused = _chessrec(*wrong, cwd=tmp_path)
    _assert_refused(refused, photos[0][0].name, "do not match the photo")
    assert not (tmp_path / "wrong.ckpt").exists()


def _assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for word in words:
        assert word in message, message


def test_labels_that_contradict_the_photo_are_refused_naming_it_and_nothing_is_written(modern_set, tmp_path):
    adapt, _ = modern_set
    folder = tmp_path / "wrong"
    folder.mkdir()
    records = json.loads((adapt[0].path.parent / "labels.json").read_text())
    for name in records:
        (folder / name).write_bytes((adapt[0].path.parent / name).read_bytes())
    wrong = sorted(records)[1]
    records[wrong]["fen"] = "4k3/8/8/8/8/8/8/4K3"  # the photo shows the full starting position
    (folder / "labels.json").write_text(json.dumps(records))
    out = tmp_path / "out.ckpt"
    result = _chessrec("finetune", str(folder), "--out", str(out), "--model", str(RELEASED_MODEL), cwd=tmp_path)
    _assert_refused(result, wrong, "do not match the photo")
    assert not out.exists() and list(tmp_path.glob("*.ckpt*")) == []


def test_too_few_photos_are_refused(modern_set, tmp_path):
    adapt, _ = modern_set
    result = _chessrec("finetune", str(adapt[0].path), "--start-position", "--out", str(tmp_path / "o.ckpt"),
                       "--model", str(RELEASED_MODEL), cwd=tmp_path)
    _assert_refused(result, "at least 2", adapt[0].path.name)
    assert not (tmp_path / "o.ckpt").exists()


def test_a_photo_without_a_board_is_refused_naming_it(modern_set, tmp_path):
    adapt, _ = modern_set
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    result = _chessrec("finetune", str(adapt[0].path), str(noise), "--start-position", "--a1", "bottom-left",
                       "--out", str(tmp_path / "o.ckpt"), "--model", str(RELEASED_MODEL), "--no-label-check",
                       cwd=tmp_path)
    _assert_refused(result, "noise.png")
    assert not (tmp_path / "o.ckpt").exists()


@pytest.mark.parametrize("args, words", [
    (["--steps", "0"], ["--steps", "greater than or equal to 1"]),
    (["--a1", "bottom-left", "--a1", "top-left", "--a1", "top-right"], ["--a1 given 3 times for 2 photos"]),
    (["--out", "model.onnx"], ["model.onnx", "*.ckpt"]),
    (["--model", "missing.ckpt"], ["missing.ckpt", "model file not found"]),
])
def test_bad_options_are_refused_in_one_line_before_any_work(modern_set, tmp_path, args, words):
    adapt, _ = modern_set
    base = ["finetune", str(adapt[0].path), str(adapt[1].path), "--start-position", "--model", str(RELEASED_MODEL)]
    if "--out" not in args:
        base += ["--out", str(tmp_path / "o.ckpt")]
    _assert_refused(_chessrec(*base, *args, cwd=tmp_path), *words)


@pytest.mark.slow
def test_adapt_stage_scores_base_and_adapted_model_side_by_side(tiny_repo):
    metrics = json.loads((tiny_repo / "dvclive/adapt/metrics.json").read_text())
    for model in ("base", "adapted"):
        assert 0.0 <= metrics[model]["square_acc"] <= 1.0
        assert metrics[model]["square_acc_low"] <= metrics[model]["square_acc"] <= metrics[model]["square_acc_high"]
    assert metrics["gain"]["square_acc"] == pytest.approx(metrics["adapted"]["square_acc"] - metrics["base"]["square_acc"])
    assert metrics["adapt_photos"] == 2 and metrics["test_photos"] == 4
    assert "| adapted |" in (tiny_repo / "dvclive/adapt/adapt.md").read_text()
    photos = json.loads((tiny_repo / "data/adapt_set/labels.json").read_text())
    assert sum(r["split"] == "train" for r in photos.values()) == 2
    card = torch.load(tiny_repo / "models/adapted.ckpt", map_location="cpu", weights_only=True)[CARD_KEY]
    assert card["provenance"]["adapted_from"]["file"] == "classifier.ckpt"
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=tiny_repo, capture_output=True,
                                      text=True, check=True).stdout)
    assert "dvclive/adapt/metrics.json" in shown[0]["data"]["metrics"]


def test_augmented_copies_start_with_the_photo_itself_and_keep_the_board_inside_the_image():
    render = render_board(START_LABELS, 3, 320, with_ids=False)
    specs = {"occupancy": CropSpec(kind="plain", size=16), "piece": CropSpec(kind="height_aware", size=16)}
    copies = augmented_crops(render.image, render.corners, specs, 6, np.random.default_rng(0), jitter=0.1)
    for name, spec in specs.items():
        assert copies[name].shape[:2] == (6, 64)
        assert np.array_equal(copies[name][0], square_crops(render.image, render.corners, spec))
        assert not np.array_equal(copies[name][1], copies[name][0])
    # a board that fills the photo: moved corners must stay on it (else cutting fails on a valid photo)
    filled = np.zeros((200, 200, 3), np.uint8)
    edge = np.array([[0, 0], [199, 0], [199, 199], [0, 199]], float)
    many = augmented_crops(filled, edge, {"square": CropSpec(kind="plain", size=8)}, 40, np.random.default_rng(1),
                           jitter=0.3)
    assert many["square"].shape == (40, 64, 3, 8, 8)


def test_random_squares_keep_each_crops_square_colour():
    squares = torch.arange(64).repeat(3)
    dataset = torch.utils.data.TensorDataset(torch.zeros(192, 1), squares, torch.zeros(192, dtype=torch.long))
    shuffled = with_random_squares(dataset, np.random.default_rng(0)).tensors[1]
    assert torch.equal(square_inputs(shuffled)[:, 0], square_inputs(squares)[:, 0])
    assert (shuffled != squares).float().mean() > 0.9


def test_a_label_contradicts_the_photo_only_where_its_colour_or_occupancy_is_implausible():
    labels = np.array([5, 6, 11, EMPTY] + [EMPTY] * 60)  # white king, black pawn, black king, empty
    probs = np.full((64, 13), 1e-4)
    probs[:, EMPTY] = 1.0
    probs[0, 0] = probs[0, EMPTY] = 0.5  # a white piece (a pawn, not the king): the colour fits
    probs[1, 11] = probs[1, EMPTY] = 0.5  # a black piece: fits
    probs[2, 5] = 1.0  # white where a black king is labelled: contradicts
    probs[2, EMPTY] = 1e-4
    probs[3, 7] = 0.99  # a black piece where the label says empty: contradicts
    probs[3, EMPTY] = 0.01
    probs /= probs.sum(axis=1, keepdims=True)
    assert contradicted_squares(labels, probs).tolist() == [2, 3]

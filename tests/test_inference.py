"""The inference seam: model cards, the one loader, a cascade behind the same interface, the board lock.

Models here are real checkpoints written by the project's training code, or small untrained
torch networks wrapped by the torch backend; photos are rendered by the project's renderer.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import chess
import cv2
import numpy as np
import pytest
import torch

from chessrec.config import validate_params
from chessrec.decoding import GameTracker, decode_sequence
from chessrec.errors import UserError
from chessrec.features import crops_by_spec, featurize, load_features, write_arrays
from chessrec.geometry import CropSpec, order_corners
from chessrec.inference.card import CARD_KEY, SQUARE_CROPS, ModelCard
from chessrec.inference.loader import load_model
from chessrec.inference.model import Cascade, SquareModel
from chessrec.inference.torch_backend import TorchSquareModel, build_network
from chessrec.inference.views import MirrorAveraged, with_views
from chessrec.labels import CLASS_NAMES, EMPTY, labels_from_board, labels_from_fen
from chessrec.recognize import Recognizer, recognize
from chessrec.synth import render_board
from chessrec.training import fit

SRC = Path(__file__).resolve().parents[1] / "src"
SPEC = CropSpec(kind="plain", size=8, mirror=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint from the training code: one quick epoch on random 8x8 plain crops."""
    root = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        write_arrays(root / split, {f"crops_{SQUARE_CROPS}": rng.integers(0, 256, (n, 64, 3, 8, 8), dtype=np.uint8),
                                    "labels": rng.integers(0, 13, (n, 64))})
    params = validate_params({"features": {"crop": "plain", "size": 8, "mirror": False}, "model": {"width": 4},
                              "train": {"epochs": 1, "batch_size": 256}})
    fit(params, root, root / "model.ckpt", logger=False, callbacks=[])
    return root / "model.ckpt"


def _photo(seed: int = 5):
    board = chess.Board()
    for san in ("e4", "e5", "Nf3"):
        board.push_san(san)
    rendered = render_board(labels_from_board(board), rng_seed=seed, image_size=320, with_ids=False)
    return rendered.image, rendered.corners


def _a1_in_image(corners: np.ndarray) -> str:
    image_order = order_corners(corners, "bottom-left")
    names = ("top-left", "top-right", "bottom-right", "bottom-left")
    return names[int(np.argmin(np.linalg.norm(image_order - corners[3], axis=1)))]


def test_loading_a_model_and_recognising_a_photo_never_imports_lightning(checkpoint, tmp_path):
    image, corners = _photo()
    np.save(tmp_path / "photo.npy", image)
    script = f"""
import sys, numpy as np
from chessrec.recognize import recognize
result = recognize(np.load({str(tmp_path / 'photo.npy')!r}), corners={corners.tolist()!r},
                   a1={_a1_in_image(corners)!r}, model={str(checkpoint)!r})
assert len(result.fen.split("/")) == 8
print(sorted(m for m in sys.modules if "lightning" in m))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_checkpoint_card_round_trips_and_rebuilds_the_same_network(checkpoint):
    model = load_model(checkpoint)
    raw = torch.load(checkpoint, weights_only=True)
    assert ModelCard.from_dict(raw[CARD_KEY]) == model.card
    assert json.loads(json.dumps(model.card.to_dict())) == raw[CARD_KEY]  # plain JSON: an ONNX file can hold it
    assert model.card.crop_specs == {SQUARE_CROPS: SPEC}
    assert model.card.preprocessing.divisor == 255.0 and model.card.preprocessing.mean == 0.5


def test_checkpoint_written_before_model_cards_loads_with_the_same_predictions(checkpoint, tmp_path):
    """Checkpoints of earlier runs carry only Lightning hyperparameters: they still load, unchanged."""
    raw = torch.load(checkpoint, weights_only=True)
    card = raw.pop(CARD_KEY)
    raw["hyper_parameters"] = {
        "model": {k: card["architecture"][k] for k in ("name", "width", "dropout")},
        "features": {"crop": "plain", "size": 8, "mirror": False, "extra_inputs": True},
        "train": {"head": "single"},
        "crop_spec": card["crop_specs"][SQUARE_CROPS],
    }
    torch.save(raw, tmp_path / "old.ckpt")
    crops = {SQUARE_CROPS: np.random.default_rng(1).integers(0, 256, (2, 64, 3, 8, 8), dtype=np.uint8)}
    np.testing.assert_array_equal(load_model(tmp_path / "old.ckpt").predict_proba(crops),
                                  load_model(checkpoint).predict_proba(crops))


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_whose_unpickling_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(UserError, match="evil.ckpt: refused") as info:
        load_model(tmp_path / "evil.ckpt")
    assert not marker.exists()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content, message", [
    (b"", "not a torch zip archive"),
    (b"PK\x03\x04 cut off", "not a torch zip archive"),
])
def test_broken_model_files_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "m.ckpt").write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        load_model(tmp_path / "m.ckpt")
    assert "\n" not in str(info.value)


def test_a_truncated_checkpoint_is_a_one_line_error(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.ckpt: not a chessrec checkpoint"):
        load_model(tmp_path / "cut.ckpt")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", b"junk")
    (tmp_path / "junk.ckpt").write_bytes(zipped.getvalue())
    with pytest.raises(UserError, match="junk.ckpt: not a chessrec checkpoint"):
        load_model(tmp_path / "junk.ckpt")


def test_unknown_model_formats_say_what_is_supported(tmp_path):
    for name, message in (("m.h5", r"unknown model format '.h5' \(expected one of .ckpt, .onnx\)"),
                          ("m.onnx", "not a usable ONNX model")):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(UserError, match=message):
            load_model(tmp_path / name)


def _torch_model(classes: tuple[str, ...], spec: CropSpec, spec_name: str, seed: int) -> TorchSquareModel:
    torch.manual_seed(seed)
    card = ModelCard(architecture={"name": "tiny_cnn", "width": 4, "dropout": 0.0, "head": "single"},
                     crop_specs={spec_name: spec}, class_names=classes)
    return TorchSquareModel(build_network(card), card)


def test_a_cascade_of_two_models_serves_every_caller_unchanged(tmp_path):
    occupancy = _torch_model(("empty", "occupied"), CropSpec(kind="plain", size=8, mirror=False), "occupancy", 0)
    piece = _torch_model(CLASS_NAMES[:EMPTY], CropSpec(kind="height_aware", size=12), "piece", 1)
    cascade = Cascade(occupancy, piece)
    assert isinstance(cascade, SquareModel)
    assert set(cascade.crop_specs) == {"occupancy", "piece"}

    image, corners = _photo()
    result = recognize(image, corners=corners, a1=_a1_in_image(corners), model=cascade)
    assert result.probabilities.shape == (64, 13)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)

    # featurize cuts both specs from each photo once; the cascade reads them as evaluation does
    from PIL import Image

    from chessrec.labels import BoardSample
    Image.fromarray(image).save(tmp_path / "p.png")
    sample = BoardSample(tmp_path / "p.png", labels_from_fen(chess.STARTING_BOARD_FEN), corners, split="train")
    featurize([sample], cascade.crop_specs, tmp_path / "features", workers=1)
    crops = crops_by_spec(load_features(tmp_path / "features" / "train"))
    assert crops["occupancy"].shape == (1, 64, 3, 8, 8) and crops["piece"].shape == (1, 64, 3, 24, 12)
    np.testing.assert_allclose(MirrorAveraged(cascade).predict_proba(crops)[0], result.probabilities, atol=1e-5)
    single = recognize(image, corners=corners, a1=_a1_in_image(corners), model=cascade, mirror_average=False)
    np.testing.assert_allclose(cascade.predict_proba(crops)[0], single.probabilities, atol=1e-5)


class _LeansLeft:
    """A two-class model that calls a crop class 0 when its left half is the brighter one (90%)."""
    crop_specs = {"piece": SPEC}
    class_names = ("left", "right")

    def predict_squares(self, crops, squares):
        c = crops["piece"].astype(float)
        left = c[..., : c.shape[-1] // 2].mean(axis=(1, 2, 3)) > c[..., c.shape[-1] // 2:].mean(axis=(1, 2, 3))
        return np.where(left[:, None], [[0.9, 0.1]], [[0.2, 0.8]]).astype(np.float32)


def test_mirror_averaging_reads_each_crop_as_cut_and_mirrored_and_takes_their_geometric_mean():
    crops = np.zeros((1, 64, 3, 8, 8), np.uint8)
    crops[..., :4] = 200  # every crop is bright on its left
    model = MirrorAveraged(_LeansLeft())
    probs = model.predict_proba({"piece": crops})
    # as cut: (0.9, 0.1); mirrored: (0.2, 0.8); geometric mean sqrt(.18) : sqrt(.08), renormalised
    expected = np.array([np.sqrt(0.18), np.sqrt(0.08)]) / (np.sqrt(0.18) + np.sqrt(0.08))
    np.testing.assert_allclose(probs[0], np.tile(expected, (64, 1)), rtol=1e-5)
    assert model.crop_specs == _LeansLeft.crop_specs and model.class_names == ("left", "right")
    assert with_views(model, True).model is model.model  # wrapping twice reads twice, not four times
    assert isinstance(with_views(model, False), _LeansLeft)


def test_cascade_runs_the_piece_model_only_where_a_piece_may_stand():
    class Counting:
        crop_specs = {"piece": SPEC}
        class_names = CLASS_NAMES[:EMPTY]
        seen = 0

        def predict_squares(self, crops, squares):
            Counting.seen += len(squares)
            return np.full((len(squares), EMPTY), 1 / EMPTY, np.float32)

        predict_proba = None

    class HalfEmpty:
        crop_specs = {"piece": SPEC}
        class_names = ("empty", "occupied")

        def predict_squares(self, crops, squares):
            occupied = (np.asarray(squares) % 2).astype(np.float32)
            return np.stack([1 - occupied, occupied], axis=1)

        predict_proba = None

    crops = {"piece": np.zeros((3, 64, 3, 8, 8), np.uint8)}
    probs = Cascade(HalfEmpty(), Counting()).predict_proba(crops)
    assert Counting.seen == 3 * 32
    assert (probs[:, ::2, EMPTY] == 1).all() and np.allclose(probs[:, 1::2, :EMPTY].sum(axis=2), 1)


def test_recognizer_locks_the_board_and_relocates_when_the_view_moves(checkpoint, monkeypatch):
    image, corners = _photo()
    recognizer = Recognizer(model=checkpoint)
    located = []
    monkeypatch.setattr(recognizer, "locate", lambda pixels, name="image": located.append(1) or
                        order_corners(corners, "bottom-left"))
    first = recognizer.recognize(image)
    assert not first.from_lock and len(located) == 1 and recognizer.lock is not None
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    second = recognizer.recognize(noisy)
    assert second.from_lock and len(located) == 1
    assert second.a1 == first.a1 and np.array_equal(second.corners, first.corners)
    square_px = np.linalg.norm(corners[1] - corners[0]) / 8
    moved = np.roll(image, int(round(square_px / 2)), axis=1)  # the board slid half a square
    assert not recognizer.lock_holds(moved)
    recognizer.recognize(moved)
    assert len(located) == 2


def test_a_lock_refreshed_on_settled_frames_holds_through_a_game_and_still_drops_a_moved_board():
    """Moved pieces and drifting light wear the checker pattern down over a game: against its strength
    when locked the re-check fails on a board that never moved; refreshed on each settled frame it
    holds, and a board that slid a square along its rank still fails."""
    from chessrec.broadcast.benchmark import render_game

    game = render_game(12018, 18, 640, still_frames=1, fps=5.0)
    settled = [frame.pixels for frame, shows in zip(game.frames, game.shows) if shows >= 0]
    board = order_corners(game.corners, "bottom-right")

    stale = Recognizer(model="unused.ckpt")
    stale.lock_board(settled[0], board, "bottom-right")
    assert not all(stale.lock_holds(pixels) for pixels in settled)

    fresh = Recognizer(model="unused.ckpt")
    fresh.lock_board(settled[0], board, "bottom-right")
    for pixels in settled:
        assert fresh.lock_holds(pixels)
        fresh.refresh_lock(pixels)
    square = (board[1] - board[0]) / 8  # one square along the rank: light squares lie where dark ones were
    slid = cv2.warpAffine(settled[-1], np.float32([[1, 0, square[0]], [0, 1, square[1]]]),
                          settled[-1].shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    assert not fresh.lock_holds(slid)


def test_a_trusted_refresh_follows_a_move_that_halves_the_pattern_and_a_slid_board_still_fails():
    """One move can take more than half the checker pattern's strength at once (here ply 17 of a
    rendered game: 43.6 -> 19.6).  Refreshed only while it holds, the lock keeps the old reference and
    fails on the board that never moved, frame after frame, until it is located again; refreshed as
    trusted (a decode that continued the game) it takes the new strength and holds, and a board slid
    by a square (the phase flipped) still fails, trusted or not."""
    from chessrec.broadcast.benchmark import render_game

    game = render_game(11004, 18, 640, still_frames=1, fps=5.0)
    settled = [frame.pixels for frame, shows in zip(game.frames, game.shows) if shows >= 0]
    board = order_corners(game.corners, "bottom-right")
    before, after = settled[16], settled[17]

    held_only = Recognizer(model="unused.ckpt")
    held_only.lock_board(before, board, "bottom-right")
    assert not held_only.lock_holds(after)
    held_only.refresh_lock(after)
    assert not held_only.lock_holds(after)  # stuck on the old strength

    trusted = Recognizer(model="unused.ckpt")
    trusted.lock_board(before, board, "bottom-right")
    trusted.refresh_lock(after, trusted=True)
    assert trusted.lock_holds(after)
    square = (board[1] - board[0]) / 8
    slid = cv2.warpAffine(after, np.float32([[1, 0, square[0]], [0, 1, square[1]]]), after.shape[1::-1],
                          borderMode=cv2.BORDER_REPLICATE)
    assert not trusted.lock_holds(slid)
    trusted.refresh_lock(slid, trusted=True)
    assert not trusted.lock_holds(slid)


def test_game_tracker_streams_the_continuity_decode_with_moves_and_boards():
    board, frames = chess.Board(), []
    for san in ("e4", "e5", "Nf3", "Nc6", "Bb5", "a6", "O-O"):
        board.push_san(san)
        frames.append(labels_from_board(board))
    probs = np.full((len(frames), 64, 13), 0.02 / 12)
    probs[np.arange(len(frames))[:, None], np.arange(64), np.stack(frames)] = 0.98
    probs[3, 4] = 0.02 / 12  # frame 3 misreads e1: the king looks like a queen
    probs[3, 4, 4] = 0.98
    tracker = GameTracker()
    streamed = [tracker.push(p) for p in probs]
    batch = decode_sequence("continuity", probs)
    for frame, decoded in zip(streamed, batch):
        np.testing.assert_array_equal(frame.decoded.labels, decoded.labels)
        assert frame.decoded.moves == decoded.moves
    assert streamed[0].restarted and not any(f.restarted for f in streamed[1:])
    assert [tuple(m.uci() for m in f.moves) for f in streamed[1:]] == [("e7e5",), ("g1f3",), ("b8c6",), ("f1b5",),
                                                                      ("a7a6",), ("e1g1",)]
    assert streamed[-1].positions[0].board_fen() == board.board_fen()
    assert streamed[-1].before.san(streamed[-1].moves[0]) == "O-O"


@pytest.mark.parametrize("mmap", [False, True])
def test_a_truncated_feature_array_is_a_one_line_error_naming_the_file(tmp_path, mmap):
    write_arrays(tmp_path / "test", {"labels": np.zeros((4, 64), np.int64),
                                     "crops_square": np.zeros((4, 64, 3, 8, 8), np.uint8)})
    path = tmp_path / "test" / "crops_square.npy"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="not a readable feature array") as info:
        load_features(tmp_path / "test", mmap=mmap)
    assert "crops_square.npy" in str(info.value) and "\n" not in str(info.value)


def test_a_cascade_card_gives_its_occupancy_network_its_own_width_and_older_cards_one_width():
    from chessrec.inference.card import stage_cards

    specs = {"occupancy": CropSpec(kind="height_aware", size=12), "piece": CropSpec(kind="height_aware", size=16)}
    narrow = ModelCard(architecture={"name": "strided_cnn", "width": 16, "dropout": 0.1, "system": "cascade",
                                     "head": "single", "occupancy_width": 8}, crop_specs=specs)
    stages = stage_cards(narrow)
    assert stages["occupancy"].architecture["width"] == 8 and stages["piece"].architecture["width"] == 16
    assert all("occupancy_width" not in card.architecture for card in stages.values())
    assert build_network(stages["occupancy"]).head[-1].out_features == 2
    older = ModelCard(architecture={k: v for k, v in narrow.architecture.items() if k != "occupancy_width"},
                      crop_specs=specs, version=1)
    assert {card.architecture["width"] for card in stage_cards(older).values()} == {16}


def test_a_card_keeps_its_crop_footprint_and_cards_from_before_it_cut_as_they_did():
    """A model is read with the crops it was trained on: cards written before ``footprint`` existed
    (the released model's) bound the square's corners, as their crops were cut."""
    card = ModelCard(architecture={"name": "strided_cnn", "width": 8, "dropout": 0.0, "head": "single"},
                     crop_specs={SQUARE_CROPS: CropSpec(size=16, footprint="disc")})
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))).crop_specs[SQUARE_CROPS].footprint == "disc"
    older = card.to_dict()
    del older["crop_specs"][SQUARE_CROPS]["footprint"]
    assert ModelCard.from_dict(older).crop_specs[SQUARE_CROPS].footprint == "square"


def _photo_samples(folder: Path, splits: list[str]) -> list:
    """Rendered photos on disk, one per split name, as featurize's samples."""
    from PIL import Image

    from chessrec.labels import BoardSample

    samples = []
    for i, split in enumerate(splits):
        image, corners = _photo(seed=i)
        Image.fromarray(image).save(folder / f"p{i}.png")
        samples.append(BoardSample(folder / f"p{i}.png", labels_from_fen(chess.STARTING_BOARD_FEN), corners,
                                   split=split, game_id=f"g{i}", move_id=i))
    return samples


def test_featurize_workers_write_every_split_whole_and_clear_an_earlier_runs_leftovers(tmp_path):
    """Two worker processes write the crops into the split files; an empty split is a 0-row array; the
    arrays of specs no longer cut and the temp files of a killed run are gone afterwards."""
    from PIL import Image

    from chessrec.geometry import square_crops

    samples = _photo_samples(tmp_path, ["train", "train", "train", "test"])
    out = tmp_path / "features"
    write_arrays(out / "train", {"crops_square": np.zeros((1, 64, 3, 8, 8), np.uint8)})  # an earlier run's spec
    (out / "train" / ".crops_piece.npy.abc123.tmp").write_bytes(b"half a file")  # a killed run's leftover
    specs = {"occupancy": CropSpec(kind="height_aware", size=8), "piece": CropSpec(kind="height_aware", size=12)}

    assert featurize(samples, specs, out, workers=2) == {"train": 3, "val": 0, "test": 1}

    train = load_features(out / "train")
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        f"{name}.npy" for name in ("crops_occupancy", "crops_piece", "labels", "game_id", "move_id", "image_path"))
    for row, sample in enumerate(samples[:3]):  # each worker's rows land where their photo belongs
        image = np.asarray(Image.open(sample.image_path).convert("RGB"))
        np.testing.assert_array_equal(train["crops_piece"][row], square_crops(image, sample.corners, specs["piece"]))
    assert train["game_id"].tolist() == ["g0", "g1", "g2"] and train["move_id"].tolist() == [0, 1, 2]
    assert load_features(out / "val")["crops_occupancy"].shape == (0, 64, 3, 16, 8)
    assert load_features(out / "test")["crops_piece"].shape == (1, 64, 3, 24, 12)


def test_featurize_on_a_full_disk_is_a_one_line_error_and_keeps_the_earlier_features(tmp_path, monkeypatch):
    """Too little free space is refused before any file is written; a disk that fills while the files
    are reserved names the file; either way the earlier run's arrays stay and no temp file is left."""
    import errno
    import shutil

    from chessrec import features

    samples = _photo_samples(tmp_path, ["train", "test"])
    out = tmp_path / "features"
    earlier = {"crops_square": np.full((1, 64, 3, 8, 8), 7, np.uint8), "labels": np.zeros((1, 64), np.int64)}
    write_arrays(out / "train", earlier)
    specs = {"square": CropSpec(kind="plain", size=8)}

    def earlier_run_intact():
        assert sorted(p.name for p in (out / "train").iterdir()) == ["crops_square.npy", "labels.npy"]
        np.testing.assert_array_equal(load_features(out / "train")["crops_square"], earlier["crops_square"])
        assert not (out / "test").exists()

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(features.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(UserError, match=r"not enough disk space for the crops: 0\.02 MB needed, 0\.00 MB free"):
        featurize(samples, specs, out, workers=1)
    earlier_run_intact()

    monkeypatch.undo()
    if not hasattr(os, "posix_fallocate"):
        return

    def disk_full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(features.os, "posix_fallocate", disk_full)
    with pytest.raises(UserError, match="no space left on the device") as info:
        featurize(samples, specs, out, workers=1)
    assert "crops_square.npy" in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["crops_square.npy", "labels.npy"]
    np.testing.assert_array_equal(load_features(out / "train")["crops_square"], earlier["crops_square"])


def test_featurize_counts_a_killed_runs_temp_files_as_free_space(tmp_path, monkeypatch):
    """The half-written files a killed run left are removed before the free space is judged, so
    they do not make a disk that fits the crops look too small."""
    import shutil

    from chessrec import features

    samples = _photo_samples(tmp_path, ["train", "test"])
    out = tmp_path / "features"
    (out / "train").mkdir(parents=True)
    (out / "train" / ".crops_square.npy.abc123.tmp").write_bytes(bytes(10_000))  # a killed run's leftover
    specs = {"square": CropSpec(kind="plain", size=8)}
    needed = 2 * 64 * 3 * 8 * 8
    usage = shutil.disk_usage(tmp_path)

    def room_for_the_crops_once_the_leftovers_are_gone(path):
        leftovers = sum(f.stat().st_size for f in out.rglob(".*.tmp"))
        return usage._replace(free=needed + 100 - leftovers)

    monkeypatch.setattr(features.shutil, "disk_usage", room_for_the_crops_once_the_leftovers_are_gone)
    assert featurize(samples, specs, out, workers=1) == {"train": 1, "val": 0, "test": 1}
    assert not list(out.rglob(".*.tmp"))

"""The embedded data set: rendered game sequences and random positions, in ChessReD format.

Every image has its own seed derived from the data-set seed and its game, so the bytes
do not depend on the number of worker processes or on their scheduling.
"""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from chessrec.annotations import write_annotations
from chessrec.datasets import staged_dir
from chessrec.errors import UserError
from chessrec.fileio import write_image
from chessrec.imageio import read_rgb
from chessrec.labels import BoardSample
from chessrec.synth.positions import game_positions, random_position
from chessrec.synth.render import render_board

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class _GameTask:
    """One game (or one random position as a pseudo-game) to generate and photograph."""

    index: int
    game_id: str
    is_random: bool
    n_positions: int
    seed: int
    image_size: int
    image_dir: Path


def _derived_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def _render_game(task: _GameTask) -> list[tuple[str, int, np.ndarray, np.ndarray, dict]]:
    """Positions of one game, each rendered and saved as JPEG; returns what the annotation needs."""
    rng = np.random.default_rng(_derived_seed(task.seed, int(task.is_random), task.index))
    positions = [random_position(rng)] if task.is_random else game_positions(rng, task.n_positions)
    out = []
    for move_id, labels in enumerate(positions):
        render = render_board(labels, _derived_seed(task.seed, 2 + int(task.is_random), task.index, move_id),
                              task.image_size, with_ids=False)
        name = f"{task.game_id}_{move_id:03d}.jpg"
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(render.image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, render.camera["jpeg_quality"]])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        (task.image_dir / name).write_bytes(data.tobytes())
        out.append((name, move_id, labels, render.corners, render.camera))
    return out


def assign_splits(game_ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Whole games to train/val/test (no game straddles two splits); val and test get at least one game
    each when there are three or more games."""
    order = [game_ids[i] for i in np.random.default_rng(_derived_seed(seed, 9)).permutation(len(game_ids))]
    n = len(order)
    n_val, n_test = (round(fractions[k] * n) for k in (1, 2))
    if n >= 3:
        n_val = max(n_val, 1) if fractions[1] > 0 else 0
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
    n_train = max(n - n_val - n_test, 0)
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
    return dict(zip(order, names))


def _check(n_games: int, moves_per_game: int, n_random: int, image_size: int, workers: int,
           split_fractions: tuple[float, float, float]) -> None:
    if n_games < 0 or n_random < 0 or n_games + n_random == 0:
        raise UserError(f"need at least one game or random position (n_games={n_games}, n_random={n_random})")
    if moves_per_game < 1:
        raise UserError(f"moves_per_game must be >= 1, got {moves_per_game}")
    if not 128 <= image_size <= 4096:
        raise UserError(f"image_size must be in 128..4096, got {image_size}")
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or not math.isclose(sum(split_fractions), 1.0):
        raise UserError(f"split_fractions must be three non-negative numbers summing to 1, "
                        f"got {split_fractions}")


def render_dataset(out_dir: Path, n_games: int, moves_per_game: int, n_random: int, image_size: int = 512,
                   seed: int = 0, workers: int = 1,
                   split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> list[BoardSample]:
    """Render ``n_games`` game sequences (one image per move) and ``n_random`` random positions.

    Writes ``out_dir/images/*.jpg`` and ``out_dir/annotations.json``; splits are by game (each
    random position is its own pseudo-game).  Everything is written to a temporary sibling
    folder that replaces ``out_dir`` only when complete, so a crash leaves nothing half-written.
    """
    _check(n_games, moves_per_game, n_random, image_size, workers, tuple(split_fractions))
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        tasks = [_GameTask(g, f"g{g:04d}", False, moves_per_game, seed, image_size, tmp / "images")
                 for g in range(n_games)]
        tasks += [_GameTask(r, f"r{r:04d}", True, 1, seed, image_size, tmp / "images") for r in range(n_random)]
        splits = {**assign_splits([t.game_id for t in tasks if not t.is_random], split_fractions, seed),
                  **assign_splits([t.game_id for t in tasks if t.is_random], split_fractions, seed + 1)}
        results = _run(tasks, workers, total=n_games * moves_per_game + n_random)
        samples = [BoardSample(tmp / "images" / name, labels, corners, task.game_id, move_id,
                               splits[task.game_id], camera)
                   for task, rendered in zip(tasks, results) for name, move_id, labels, corners, camera in rendered]
        write_annotations(samples, tmp, info={"description": "chessrec synthetic renders", "seed": seed,
                                              "image_size": image_size})
    counts = {s: sum(x.split == s for x in samples) for s in SPLITS}
    print(f"render: {len(samples)} images ({n_games} games, {n_random} random positions, "
          f"{image_size}px, seed {seed}) -> {out_dir}  [train {counts['train']}, val {counts['val']}, "
          f"test {counts['test']}]")
    return [replace(s, image_path=out_dir / "images" / s.image_path.name) for s in samples]


def _run(tasks: list[_GameTask], workers: int, total: int) -> list:
    """Results in task order; a game that ends early yields fewer images than planned."""
    bar = tqdm(total=total, desc="render", unit="img", leave=False, disable=None)  # no bar in a log file
    try:
        if workers == 1:
            results = []
            for task in tasks:
                results.append(_render_game(task))
                bar.update(len(results[-1]))
            return results
        results = [None] * len(tasks)
        with multiprocessing.get_context("spawn").Pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            for i, rendered in pool.imap_unordered(_indexed, list(enumerate(tasks))):
                results[i] = rendered
                bar.update(len(rendered))
        return results
    finally:
        bar.close()


def _indexed(item: tuple[int, _GameTask]) -> tuple[int, list]:
    return item[0], _render_game(item[1])


def contact_sheet(samples: list[BoardSample], out_png: Path, n: int = 16, tile: int = 256) -> Path:
    """A grid of ``n`` samples spread over the data set, each with its annotated board outline.

    The outline (a1 corner marked by a dot) makes a wrong corner order or orientation visible
    at a glance.
    """
    if not samples:
        raise UserError(f"contact sheet {out_png}: no samples to show")
    picks = [samples[i] for i in np.linspace(0, len(samples) - 1, min(n, len(samples))).round().astype(int)]
    cols = math.ceil(math.sqrt(len(picks)))
    rows = math.ceil(len(picks) / cols)
    sheet = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for k, sample in enumerate(picks):
        image = read_rgb(sample.image_path)
        scale = tile / max(image.shape[:2])
        small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        corners = np.round(np.asarray(sample.corners) * scale).astype(np.int32)
        cv2.polylines(small, [corners], True, (0, 255, 0), 1, cv2.LINE_AA)
        cv2.circle(small, tuple(int(v) for v in corners[3]), 4, (255, 0, 0), -1, cv2.LINE_AA)
        caption = f"{sample.game_id}/{sample.move_id} {sample.split}"
        cv2.putText(small, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(small, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        r, c = divmod(k, cols)
        sheet[r * tile:r * tile + small.shape[0], c * tile:c * tile + small.shape[1]] = small
    return write_image(out_png, sheet)

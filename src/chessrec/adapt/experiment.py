"""The ``adapt`` stage's body: a set the model never trained on, adapted from a few photos and
scored on the others, base and adapted model side by side.

The set is either rendered (:class:`chessrec.synth.render.ChessSet`: a piece style, colours no
training render uses and a board; the adaptation photos show the starting position, the test
photos positions of played games; with ``cameras: fixed`` the test photos are taken by the
adaptation photos' cameras, in turn, as a broadcast's fixed cameras would, and with ``random``
each from a camera of its own) or a team's own labelled photos, ``dvc add``-ed into the
repository: the first ``train_photos`` in name order adapt, the rest are held out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chessrec.adapt.finetune import finetune, score_models
from chessrec.adapt.photos import START_LABELS, SetPhoto, photos_from_folder
from chessrec.config import AdaptConfig
from chessrec.errors import UserError
from chessrec.labels import fen_from_labels


def render_set(out_dir: Path, config: AdaptConfig, seed: int) -> tuple[list[SetPhoto], list[SetPhoto]]:
    """Render the set's adaptation photos (starting position) and test photos (game positions) into
    ``out_dir`` as a chesscog-style folder (JPEGs and ``labels.json``); returns (adapt, test)."""
    from chessrec.datasets import staged_dir
    from chessrec.fileio import write_image
    from chessrec.geometry import a1_corner_of
    from chessrec.synth.positions import game_positions
    from chessrec.synth.render import ChessSet, render_board

    chess_set = ChessSet(config.style, config.pieces, config.board, config.girth)  # validated with the params
    rng = np.random.default_rng(seed)
    positions = [START_LABELS.copy() for _ in range(config.train_photos)]
    while len(positions) < config.train_photos + config.test_photos:
        positions += game_positions(rng, 4)
    positions = positions[:config.train_photos + config.test_photos]
    records = {}
    with staged_dir(out_dir) as staging:
        for index, labels in enumerate(positions):
            split = "train" if index < config.train_photos else "test"
            scene = index % config.train_photos if config.cameras == "fixed" else index
            render = render_board(labels, seed * 100_003 + scene, config.image_size, with_ids=False, chess_set=chess_set)
            name = f"{split}_{index:03d}.jpg"  # JPEG, as the training renders are saved
            write_image(staging / name, render.image)
            records[name] = {"corners": render.corners.round(2).tolist(), "fen": fen_from_labels(labels) + " w - - 0 1",
                             "a1": a1_corner_of(render.corners), "split": split}
        (staging / "labels.json").write_text(json.dumps(records, indent=1))
    photos = {p.path.name: p for p in photos_from_folder(out_dir)}
    return ([photos[n] for n in records if records[n]["split"] == "train"],
            [photos[n] for n in records if records[n]["split"] == "test"])


def folder_set(path: Path, train_photos: int) -> tuple[list[SetPhoto], list[SetPhoto]]:
    """A team's labelled photos: the first ``train_photos`` (name order) adapt, the rest are held out."""
    photos = photos_from_folder(path)
    if len(photos) <= train_photos:
        raise UserError(f"{path}: {len(photos)} labelled photos; adapt.train_photos={train_photos} leaves none to "
                        "score the adapted model on")
    return photos[:train_photos], photos[train_photos:]


def adapt_and_score(base: Path, out: Path, adapt: list[SetPhoto], test: list[SetPhoto], config: AdaptConfig,
                    energy: dict | None = None, check_labels: bool = True) -> dict[str, float]:
    """Adapt ``base`` on ``adapt``, score base and adapted model on ``test``: flat metrics.

    ``check_labels=False`` for rendered photos: their labels are exact by construction, and a weak
    base model (the tiny profile's) would see contradictions that are its own mistakes."""
    adapted = finetune(base, adapt, out, config, check_labels=check_labels, energy=energy)
    metrics: dict[str, float] = {"adapt_photos": len(adapt), "test_photos": len(test),
                                 "fit_s": adapted.fit_s, "energy_j": adapted.energy_j}
    for name, scores in score_models({"base": base, "adapted": out}, test).items():
        for key, value in scores["constrained"].items():
            if key != "boards":
                metrics[f"{name}/{key}"] = value
    for key in ("square_acc", "board_acc", "errors_per_board"):
        metrics[f"gain/{key}"] = metrics[f"adapted/{key}"] - metrics[f"base/{key}"]
    return metrics


def summary_table(metrics: dict[str, float], what: str) -> str:
    rows = [f"| {name} | {100 * metrics[f'{name}/square_acc']:.2f}% [{100 * metrics[f'{name}/square_acc_low']:.2f}, "
            f"{100 * metrics[f'{name}/square_acc_high']:.2f}] | {100 * metrics[f'{name}/board_acc']:.1f}% "
            f"[{100 * metrics[f'{name}/board_acc_low']:.1f}, {100 * metrics[f'{name}/board_acc_high']:.1f}] | "
            f"{metrics[f'{name}/errors_per_board']:.2f} |" for name in ("base", "adapted")]
    return "\n".join([
        f"# Adapting to {what}", "",
        f"Adapted on {int(metrics['adapt_photos'])} photos, scored on {int(metrics['test_photos'])} others "
        f"(constrained decoder, non-strict; 95% intervals).", "",
        "| model | squares right | boards right | errors per board |", "|---|---:|---:|---:|", *rows, "",
        f"Adaptation: {metrics['fit_s']:.0f} s of training, {metrics['energy_j']:.0f} J.", ""])

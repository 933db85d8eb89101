"""The evaluation suite: every decoder on identical model outputs, side by side.

The classifier runs once over the test boards; each decoder then reads the very same
probabilities, so any difference in the metrics is the decoder's doing.  Metrics go to dvclive
nested as ``decoders/<name>/<metric>`` (one ``dvc exp show`` column each), with the chosen decoder's
headline figures at top level; tables and plots go beside them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from chessrec.decoding import PROMOTION_COST, DecodeOptions, check_decoder, decode_sequence
from chessrec.errors import UserError
from chessrec.fileio import write_atomic
from chessrec.geometry import board_mosaic
from chessrec.labels import CLASS_NAMES, CLASS_SYMBOLS, NUM_CLASSES
from chessrec.metrics import CONFIDENCE, Evaluation, evaluate_predictions, game_sequences

#: board metrics, in table order: (key, column title)
BOARD_METRICS: tuple[tuple[str, str], ...] = (
    ("square_acc", "square acc"),
    ("board_acc", "board acc"),
    ("board_acc_le1", "boards <= 1 error"),
    ("errors_per_board", "errors / board"),
    ("occupancy_acc", "occupancy acc"),
    ("valid_rate", "legal positions"),
    ("move_recall", "moves recovered"),
    ("latency_p50_ms", "decode p50 ms"),
    ("latency_p95_ms", "decode p95 ms"),
)


# ------------------------------------------------------------------------------------------ the stage
def run_evaluation(features_dir: Path, model_path: Path, out_dir: Path, decoders: Sequence[str], best_decoder: str,
                   topk: int = 32, strict: bool = True, promotion_cost: float = PROMOTION_COST,
                   energy: Mapping[str, float] | None = None,
                   latency_boards: int = 32, live=None, mirror_average: bool = True) -> dict[str, float]:
    """The ``evaluate`` stage body: model once, every decoder, metrics and plots into ``out_dir`` via dvclive.

    Latency is per board: the model on single boards (``latency_boards`` of them, after a warm-up) and
    each decoder on every board.  Inference energy per board is the model plus ``best_decoder`` over
    the whole set in one :class:`chessrec.energy.EnergyMeter` window, labelled measured or estimated.
    ``mirror_average`` reads every crop also mirrored (:mod:`chessrec.inference.views`), as
    :class:`chessrec.recognize.Recognizer` does by default.  Returns the flat metrics logged.
    """
    from chessrec.energy import EnergyMeter
    from chessrec.features import crops_by_spec, load_features
    from chessrec.inference.loader import load_model
    from chessrec.inference.model import check_board_crops
    from chessrec.inference.views import with_views

    decoders = [check_decoder(d) for d in decoders]
    if check_decoder(best_decoder) not in decoders:
        raise UserError(f"evaluate.best_decoder {best_decoder!r} is not among evaluate.decoders {decoders}")
    options = DecodeOptions(strict=strict, topk=topk, promotion_cost=promotion_cost)
    features = load_features(Path(features_dir))
    labels = features["labels"]
    if len(labels) == 0:
        raise UserError(f"{features_dir}: no boards to evaluate")
    model = with_views(load_model(model_path), mirror_average)
    try:
        crops = check_board_crops(model.crop_specs, crops_by_spec(features))
    except UserError as exc:
        raise UserError(f"{features_dir} and {model_path}: {exc}") from None
    shown, *_ = model.crop_specs  # the worst-boards sheet shows the first spec's crops

    model_latency = model_latency_per_board(model, {name: c[:latency_boards] for name, c in crops.items()})
    with EnergyMeter(**dict(energy or {})) as meter:
        meter.begin_window("inference")
        probs = model.predict_proba(crops)
        for idx in game_sequences(features["game_id"], features["move_id"]):
            decode_sequence(best_decoder, probs[idx], options)
        inference = meter.end_window("inference")
    evaluation = evaluate_predictions(probs, labels, features["game_id"], features["move_id"], decoders, options)

    flat = headline_metrics(evaluation, best_decoder)
    flat.update({
        "latency/model_p50_ms": float(np.percentile(model_latency, 50) * 1e3),
        "latency/model_p95_ms": float(np.percentile(model_latency, 95) * 1e3),
        "energy/inference_j_per_board": inference.total_energy_j / len(labels),
        "energy/measured": float(not inference.is_estimate),
    })
    if live is None:
        from dvclive import Live

        live_context = Live(str(out_dir), report=None, save_dvc_exp=False, dvcyaml=False)
    else:
        live_context = contextlib.nullcontext(live)
    with live_context as target:
        write_outputs(evaluation, flat, target, Path(out_dir), crops[shown], labels, model_latency, best_decoder,
                      inference.summary(), model.crop_specs[shown].mirror)
    accuracies = ", ".join(f"{name} {m['board_acc']:.3f}" for name, m in evaluation.metrics.items())
    print(f"evaluate: {len(labels)} boards, board accuracy {accuracies}; best = {best_decoder} -> {out_dir}")
    return flat


def model_latency_per_board(model, crops: Mapping[str, np.ndarray]) -> np.ndarray:
    """Seconds per board, one board at a time (as ``chessrec predict`` runs the model)."""
    n = len(next(iter(crops.values())))
    model.predict_proba({name: c[:1] for name, c in crops.items()})  # warm-up: first call pays for lazy initialisation
    times = []
    for i in range(n):
        board = {name: c[i:i + 1] for name, c in crops.items()}
        start = time.perf_counter()
        model.predict_proba(board)
        times.append(time.perf_counter() - start)
    return np.array(times)


def headline_metrics(evaluation: Evaluation, best_decoder: str) -> dict[str, float]:
    """Flat metric names for dvclive: the best decoder's headline at top level, every decoder nested."""
    best = evaluation.metrics[best_decoder]
    flat = {key: best[key] for key in ("square_acc", "square_acc_low", "square_acc_high", "board_acc",
                                       "board_acc_low", "board_acc_high", "errors_per_board")}
    flat["n_boards"] = float(len(next(iter(evaluation.runs.values())).labels))
    for name, values in evaluation.metrics.items():
        flat.update({f"decoders/{name}/{key}": value for key, value in values.items()})
    return flat


def write_outputs(evaluation: Evaluation, flat: Mapping[str, float], live, out_dir: Path, crops: np.ndarray,
                  labels: np.ndarray, model_latency: np.ndarray, best_decoder: str, energy_summary: Mapping,
                  mirrored: bool) -> None:
    """Metrics, the markdown table, per-class scores, energy provenance and plots."""
    for name, value in flat.items():
        live.log_metric(name, value if np.isfinite(value) else 0.0, plot=False)
    best_run = evaluation.runs[best_decoder]
    live.log_sklearn_plot("confusion_matrix", [CLASS_NAMES[c] for c in labels.ravel()],
                          [CLASS_NAMES[c] for c in best_run.labels.ravel()], name="confusion_matrix.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "decoders.md", decoders_table(evaluation, best_decoder, flat, energy_summary))
    write_atomic(out_dir / "per_class.json", json.dumps(evaluation.per_class, indent=2))
    write_atomic(out_dir / "energy.json", json.dumps(dict(energy_summary), indent=2))
    live.log_image("decoders.png", decoder_bars(evaluation.metrics))
    live.log_image("confusion_matrix.png", confusion_figure(evaluation.confusion[best_decoder], best_decoder))
    live.log_image("worst_boards.png", worst_boards(crops, labels, best_run.labels, best_decoder, mirrored))
    live.log_image("latency.png", latency_histogram({n: r.latency_s for n, r in evaluation.runs.items()}, model_latency))


def decoders_table(evaluation: Evaluation, best_decoder: str, flat: Mapping[str, float],
                   energy_summary: Mapping) -> str:
    """Markdown: decoders side by side, then the best decoder's per-class scores and the inference cost."""
    lines = ["# Decoders on identical model outputs", "",
             "| decoder | " + " | ".join(title for _, title in BOARD_METRICS) + " |",
             "|---|" + "---:|" * len(BOARD_METRICS)]
    for name, values in evaluation.metrics.items():
        cells = [_cell(key, values[key], values) for key, _ in BOARD_METRICS]
        lines.append(f"| {name}{' (best)' if name == best_decoder else ''} | " + " | ".join(cells) + " |")
    method = ", ".join(f"{device}: {m}" for device, m in energy_summary.get("methods", {}).items())
    n_boards = int(flat["n_boards"])
    lines += ["", f"Square and board accuracy carry their {CONFIDENCE:.0%} intervals over the {n_boards} test boards "
                  "(squares: bootstrap over boards; boards: Wilson score).",
              "", f"Model latency per board: p50 {flat['latency/model_p50_ms']:.2f} ms, "
                  f"p95 {flat['latency/model_p95_ms']:.2f} ms (single boards).",
              f"Inference energy per board (model + {best_decoder}): {flat['energy/inference_j_per_board']:.3f} J, "
              f"{'measured' if flat['energy/measured'] else 'ESTIMATED'} ({method or 'no device'}).",
              "", f"## Per class ({best_decoder})", "", "| class | precision | recall | F1 | support |",
              "|---|---:|---:|---:|---:|"]
    for cls, s in evaluation.per_class[best_decoder].items():
        lines.append(f"| {cls} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    return "\n".join(lines) + "\n"


def _cell(key: str, value: float, values: Mapping[str, float] | None = None) -> str:
    if not np.isfinite(value):
        return "n/a"
    if values is not None and f"{key}_low" in values:
        return f"{value:.3f} [{values[f'{key}_low']:.3f}, {values[f'{key}_high']:.3f}]"
    return f"{value:.2f}" if key.endswith("_ms") or key == "errors_per_board" else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------- plots
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def decoder_bars(metrics: Mapping[str, Mapping[str, float]]):
    """Grouped bars: square, board and at-most-one-error accuracy of each decoder, with 95% intervals."""
    keys = (("square_acc", "square acc"), ("board_acc", "board acc"), ("board_acc_le1", "boards <= 1 error"))
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    x = np.arange(len(metrics))
    width = 0.8 / len(keys)
    for i, (key, title) in enumerate(keys):
        values = np.array([m[key] for m in metrics.values()])
        errors = None
        if all(f"{key}_low" in m for m in metrics.values()):
            errors = np.abs(np.array([[m[f"{key}_low"], m[f"{key}_high"]] for m in metrics.values()]).T - values)
        bars = ax.bar(x + (i - (len(keys) - 1) / 2) * width, values, width, yerr=errors, capsize=2, label=title)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, list(metrics))
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("share")
    ax.set_title("Decoders on identical model outputs")
    ax.legend(loc="upper center", ncol=len(keys), fontsize=8)
    return fig


def confusion_figure(confusion: np.ndarray, decoder: str):
    """Row-normalised confusion matrix with counts, true class down, predicted across."""
    fig = _figure(7, 6)
    ax = fig.add_subplot()
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                    color="white" if rates[i, j] > 0.5 else "black")
    ticks = np.arange(NUM_CLASSES)
    ax.set_xticks(ticks, CLASS_NAMES, rotation=90, fontsize=7)
    ax.set_yticks(ticks, CLASS_NAMES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({decoder})")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
    return fig


#: chess glyphs for the board diagrams (matplotlib ships DejaVu Sans, which has them)
_GLYPHS = dict(zip(CLASS_SYMBOLS, "\u2659\u2656\u2658\u2657\u2655\u2654\u265f\u265c\u265e\u265d\u265b\u265a "))
_LIGHT, _DARK, _WRONG = (240, 217, 181), (181, 136, 99), (230, 80, 80)


def _draw_diagram(draw, origin: tuple[int, int], labels: np.ndarray, wrong: np.ndarray, cell: int, font) -> None:
    x0, y0 = origin
    for square in range(64):
        file, row = square % 8, 7 - square // 8
        colour = _WRONG if wrong[square] else (_LIGHT if (file + row) % 2 == 0 else _DARK)
        box = (x0 + file * cell, y0 + row * cell, x0 + (file + 1) * cell - 1, y0 + (row + 1) * cell - 1)
        draw.rectangle(box, fill=colour)
        glyph = _GLYPHS[CLASS_SYMBOLS[labels[square]]]
        if glyph != " ":
            draw.text((box[0] + cell / 2, box[1] + cell / 2), glyph, fill=(0, 0, 0), font=font, anchor="mm")


def worst_boards(crops: np.ndarray, true: np.ndarray, pred: np.ndarray, decoder: str, mirrored: bool,
                 n: int = 6, cell: int = 32) -> np.ndarray:
    """The boards with most errors as one RGB sheet: what the model saw, the truth, the decoded board.

    Drawn with PIL rather than matplotlib: a few hundred glyphs in matplotlib cost seconds per sheet.
    """
    from matplotlib import get_data_path
    from PIL import Image, ImageDraw, ImageFont

    fonts = Path(get_data_path()) / "fonts" / "ttf"
    glyph_font = ImageFont.truetype(str(fonts / "DejaVuSans.ttf"), int(cell * 0.8))
    title_font = ImageFont.truetype(str(fonts / "DejaVuSans.ttf"), 14)
    errors = (pred != true).sum(axis=1)
    worst = np.argsort(-errors, kind="stable")[:n]
    side, title, gap = 8 * cell, 22, 12
    mosaic_width = int(round(side * crops.shape[-1] / crops.shape[-2]))
    sheet = Image.new("RGB", (mosaic_width + 2 * side + 4 * gap, len(worst) * (side + title + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for row, i in enumerate(worst):
        y = gap + row * (side + title + gap)
        mosaic = Image.fromarray(board_mosaic(crops[i], unmirror=mirrored, gap=0)).resize((mosaic_width, side))
        sheet.paste(mosaic, (gap, y + title))
        columns = (gap, 2 * gap + mosaic_width, 3 * gap + mosaic_width + side)
        headings = (f"#{i} crops", "true", f"{decoder}: {errors[i]} error(s)")
        for x, heading in zip(columns, headings):
            draw.text((x, y), heading, fill=(0, 0, 0), font=title_font)
        _draw_diagram(draw, (columns[1], y + title), true[i], np.zeros(64, bool), cell, glyph_font)
        _draw_diagram(draw, (columns[2], y + title), pred[i], pred[i] != true[i], cell, glyph_font)
    return np.asarray(sheet)


def latency_histogram(decoder_latency: Mapping[str, np.ndarray], model_latency: np.ndarray):
    """Per-board latency distributions, log-scaled: the model on one board, then each decoder."""
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    series = {"model": model_latency, **decoder_latency}
    all_ms = np.concatenate([np.asarray(v) * 1e3 for v in series.values()])
    low, high = max(all_ms.min(), 1e-3), max(all_ms.max(), 1e-2)
    bins = np.geomspace(low * 0.9, high * 1.1, 40)
    for name, seconds in series.items():
        ax.hist(np.asarray(seconds) * 1e3, bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("ms per board")
    ax.set_ylabel("boards")
    ax.set_title("Latency per board: model and decoders")
    ax.legend(fontsize=8)
    return fig

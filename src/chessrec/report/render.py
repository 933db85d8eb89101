"""Writing the report: ``report.md`` plus PNG plots (matplotlib, Agg backend), all or nothing.

Everything is first written into a temporary folder beside ``out`` and then moved into place,
so a failure never leaves a half-written report; plots a previous run made but this run
cannot (say, no learning curve against epochs) are removed rather than left stale.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from chessrec.report.curves import CURVE_PARAMS, Curve, learning_curves, varying_params  # noqa: E402
from chessrec.report.experiments import ARTEFACT_PARAM, ExperimentRow, ExperimentTable  # noqa: E402
from chessrec.report.pareto import ENERGY, LATENCY, Axis, efficient_steps, pareto_front, usable  # noqa: E402
from chessrec.report.stopping import (  # noqa: E402
    Recommendation, StoppingRule, basis, energy_basis, recommend,
)

REPORT_FILE = "report.md"
#: every file the report may write; the ones a run does not produce are removed from ``out``
PLOT_FILES = {
    "energy": "pareto_energy.png",
    "latency": "pareto_latency.png",
    "data.n_games": "learning_data_size.png",
    "train.epochs": "learning_epochs.png",
    "model.width": "learning_model_width.png",
    "features.piece_size": "learning_crop_size.png",
}


def _fmt(value: float | None) -> str:
    """Three significant digits, without scientific notation for the magnitudes we report."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    """A percentage with its 95% interval when the experiment logged one."""
    if value is None or low is None or high is None:
        return _pct(value)
    return f"{100 * value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def plot_front(rows: list[ExperimentRow], axis: Axis, path: Path, choice: str | None = None) -> None:
    """Board accuracy against one cost: measured energies filled, estimates hollow, front joined,
    the recommended experiment (``choice``) starred."""
    points = usable(rows, axis)
    front = pareto_front(points, axis)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for kind, face in (("measured", "tab:blue"), ("estimated", "none"), ("unknown", "none")):
        group = [r for r in points if energy_basis(r) == kind]
        if group:
            ax.scatter([axis.value(r) for r in group], [100 * r.board_acc for r in group], s=40,
                       facecolors=face, edgecolors="tab:blue" if kind != "unknown" else "tab:gray",
                       label=f"training energy {kind}")
    ax.step([axis.value(r) for r in front], [100 * r.board_acc for r in front], where="post",
            color="tab:red", label="Pareto front")
    ax.scatter([axis.value(r) for r in front], [100 * r.board_acc for r in front], s=90,
               facecolors="none", edgecolors="tab:red")
    with_interval = [r for r in points if r.board_acc_half_width is not None]
    if with_interval:
        ax.errorbar([axis.value(r) for r in with_interval], [100 * r.board_acc for r in with_interval],
                    yerr=[[100 * (r.board_acc - r.board_acc_low) for r in with_interval],
                          [100 * (r.board_acc_high - r.board_acc) for r in with_interval]],
                    fmt="none", ecolor="tab:blue", alpha=0.4, capsize=2, label="95% interval")
    for r in points:
        if r.name == choice:
            ax.scatter([axis.value(r)], [100 * r.board_acc], marker="*", s=220, color="tab:green",
                       zorder=3, label="recommended")
        ax.annotate(r.name, (axis.value(r), 100 * r.board_acc), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    costs = [axis.value(r) for r in points]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"{axis.label} ({axis.unit})")
    ax.set_ylabel("board accuracy (%)")
    ax.set_title(f"Board accuracy vs {axis.label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(curves: list[Curve], path: Path) -> None:
    """One line per group of otherwise-equal experiments."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for curve in curves:
        ax.plot([x for x, _, _ in curve.points], [100 * y for _, y, _ in curve.points], marker="o",
                label=curve.label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis = CURVE_PARAMS[curves[0].param]
    ax.set_xlabel(axis.label)
    ax.set_ylabel("board accuracy (%)")
    ax.set_title(f"Learning curve: board accuracy vs {axis.title}")
    ax.grid(alpha=0.3)
    # below the axes: the labels name every setting a line holds, and inside they cover its points
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _gains_table(rows: list[ExperimentRow], axis: Axis) -> list[str]:
    front = pareto_front(rows, axis)
    steps = efficient_steps(front, axis)
    if not steps:
        return ["Only one experiment is on this front, so there are no steps to compare.", ""]
    with_basis = axis is ENERGY  # only energy figures can be measured or estimated
    lines = [f"| step | board acc gain (points) | extra {axis.unit} | points per {axis.unit} |"
             + (" energy figures |" if with_basis else ""),
             "|---|---|---|---|" + ("---|" if with_basis else "")]
    for s in steps:
        basis = f"{energy_basis(s.start)} → {energy_basis(s.end)}"
        if energy_basis(s.start) != energy_basis(s.end):
            basis += " ⚠ mixed"
        lines.append(f"| {s.start.name} → {s.end.name} | {s.gain_points:+.2f} | {_fmt(s.extra_cost)} "
                     f"| {_fmt(s.points_per_unit)} |" + (f" {basis} |" if with_basis else ""))
    reached = {s.end.name for s in steps}
    skipped = [r.name for r in front[1:] if r.name not in reached]
    if skipped:
        lines += ["", f"Skipped: {', '.join(skipped)}. A dearer point gains more per {axis.unit} from the same "
                  "start (extended dominance), so the step through it is never the one to judge."]
    return lines + [""]


def _adapted(row: ExperimentRow) -> str:
    """The adapt stage's figures: squares read on a set never trained on, before and after adapting."""
    if row.new_set_base_square_acc is None or row.new_set_adapted_square_acc is None:
        return "—"
    return f"{100 * row.new_set_base_square_acc:.2f}% → {100 * row.new_set_adapted_square_acc:.2f}%"


def _broadcast(row: ExperimentRow) -> str:
    """The broadcast stage's figures: moves right (up to the first wrong one) and games entirely right."""
    if row.broadcast_move_acc is None or row.broadcast_game_acc is None:
        return "—"
    return f"{100 * row.broadcast_move_acc:.1f}% / {100 * row.broadcast_game_acc:.0f}%"


def _experiment_table(rows: list[ExperimentRow]) -> list[str]:
    swept = varying_params(rows)
    on_energy = {r.name for r in pareto_front(rows, ENERGY)}
    on_latency = {r.name for r in pareto_front(rows, LATENCY)}
    lines = ["| experiment | " + " | ".join(f"`{k}`" for k in swept)
             + " | board acc [95% interval] | square acc [95% interval] | training energy (kJ) | latency (ms) | inference J/board"
             + " | new set squares: base → adapted | broadcast moves / games right | front |",
             "|---|" + "---|" * len(swept) + "---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (-(r.board_acc or 0.0), r.name)):
        fronts = ", ".join(n for n, names in (("energy", on_energy), ("latency", on_latency)) if r.name in names)
        inference = "—" if r.inference_j_per_board is None else (
            f"{_fmt(r.inference_j_per_board)} ({basis(r.inference_energy_measured)})")
        energy = "—" if r.train_energy_j is None else f"{_fmt(r.train_energy_j / 1000)} ({energy_basis(r)})"
        lines.append(f"| {r.name} | " + " | ".join(str(r.params.get(k, "—")) for k in swept)
                     + f" | {_interval(r.board_acc, r.board_acc_low, r.board_acc_high)}"
                     + f" | {_interval(r.square_acc, r.square_acc_low, r.square_acc_high)} | {energy} | {_fmt(r.latency_ms)}"
                     + (f" (median of {r.latency_runs})" if r.latency_runs > 1 else "")
                     + f" | {inference} | {_adapted(r)} | {_broadcast(r)} | {fronts or '—'} |")
    if any(r.latency_runs > 1 for r in rows):
        lines += ["", "Latency is a property of the network, not of its training: experiments that run the same "
                  "network at inference (equal `model.*`, `features.*`, `train.head`, `trainer.precision` and "
                  "decoder settings) share one figure, the median of their runs, so that measurement noise "
                  "between runs is not read as a cost or a saving."]
    return lines + [""]


def _provenance(rows: list[ExperimentRow]) -> list[str]:
    lines = ["## Which energy figures are measured", ""]
    for what, value, flag in (("training energy", "train_energy_j", "energy_measured"),
                              ("inference energy", "inference_j_per_board", "inference_energy_measured")):
        for kind in ("measured", "estimated", "unknown"):
            names = [r.name for r in rows if getattr(r, value) is not None and basis(getattr(r, flag)) == kind]
            if names:
                lines.append(f"- {what} **{kind}**: {len(names)} experiment(s) ({', '.join(names)})")
    lines += ["", "Measured means read from the hardware (NVML energy counter or sampled power on GPUs, RAPL on "
              "CPUs); estimated "
              "means CPU time multiplied by `energy.cpu_watts_per_core`, a labelled guess. Compare "
              "points per kJ only between figures of the same kind.", ""]
    return lines


def render_markdown(table: ExperimentTable, rule: StoppingRule, rec: Recommendation,
                    plots: dict[str, str]) -> str:
    """The report text; ``plots`` maps a plot key of :data:`PLOT_FILES` to its file name."""
    rows = list(table.rows)
    lines = [f"# Experiment report: baseline `{table.baseline}`", "",
             f"{sum(ARTEFACT_PARAM not in r.params for r in rows)} finished experiment(s) of the current baseline, "
             f"read from `dvc exp show --json` ({len(rows)} rows with their exported artefacts); "
             f"{len(table.excluded)} left out (see the end).", "", "## Recommendation", ""]
    if rec.choice is None:
        lines.append(f"**No recommendation**: {rec.reason}")
    else:
        verdict = "stop optimising" if rec.stop else "keep optimising"
        lines += [f"**{rec.choice.name}: {verdict}.**", "", f"Why: {rec.reason}"]
    for warning in rec.warnings:
        lines += ["", f"> ⚠ {warning}"]
    lines += ["", "Stopping rule (params.yaml `report.*`):", ""]
    lines += [f"- {item}" for item in rule.describe()] + [""]
    lines += ["## Experiments", ""] + _experiment_table(rows) + _provenance(rows)
    for key, axis in (("energy", ENERGY), ("latency", LATENCY)):
        lines += [f"## Board accuracy vs {axis.label}", ""]
        if key in plots:
            lines += [f"![board accuracy vs {axis.label}]({plots[key]})", "",
                      "Marginal gain of each step along the Pareto front's upper hull (cheapest first):", ""]
            lines += _gains_table(rows, axis)
        else:
            lines += [f"No experiment has both board accuracy and {axis.label}.", ""]
    lines += ["## Learning curves", ""]
    for param, (_, label) in CURVE_PARAMS.items():
        if param in plots:
            lines += [f"![board accuracy vs {label}]({plots[param]})", ""]
        else:
            lines += [f"No curve against {label}: no two experiments differ only in `{param}`.", ""]
    lines += ["## Excluded experiments", ""]
    left_out = [f"- {e.name}: {e.reason}" for e in table.excluded]
    left_out += [f"- {e.name} (shown above, but not considered for the recommendation): {e.reason}"
                 for e in rec.excluded]
    lines += left_out or ["None."]
    return "\n".join(lines) + "\n"


def write_report(table: ExperimentTable, rule: StoppingRule, out: Path) -> Path:
    """Write ``out/report.md`` and its plots atomically; return the report's path."""
    rows = list(table.rows)
    rec = recommend(rows, rule)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        plots: dict[str, str] = {}
        for key, axis in (("energy", ENERGY), ("latency", LATENCY)):
            if usable(rows, axis):
                plot_front(rows, axis, staging / PLOT_FILES[key], rec.choice.name if rec.choice else None)
                plots[key] = PLOT_FILES[key]
        for param in CURVE_PARAMS:
            curves = learning_curves(rows, param)
            if curves:
                plot_curves(curves, staging / PLOT_FILES[param])
                plots[param] = PLOT_FILES[param]
        (staging / REPORT_FILE).write_text(render_markdown(table, rule, rec, plots), encoding="utf-8")
        for name in PLOT_FILES.values():
            if name not in plots.values():
                (out / name).unlink(missing_ok=True)
        for name in [*plots.values(), REPORT_FILE]:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / REPORT_FILE

"""Learning curves across experiments: board accuracy against one swept param (data size, epochs).

Experiments are grouped by every other param that varies in the sweep, so a curve only ever
changes the one param it is drawn against.
"""

from __future__ import annotations

from dataclasses import dataclass

from chessrec.report.experiments import ExperimentRow

#: the params the report draws learning curves against, with axis labels
CURVE_PARAMS = {"data.n_games": "training games (data.n_games)", "train.epochs": "epochs (train.epochs)"}


@dataclass(frozen=True)
class Curve:
    """Board accuracy of experiments that differ only in ``param``, sorted by its value."""

    param: str
    label: str
    points: tuple[tuple[float, float, str], ...]  # (param value, board_acc, experiment name)


def varying_params(rows: list[ExperimentRow]) -> list[str]:
    """Param keys whose value is not the same in every row, sorted."""
    keys = sorted({key for row in rows for key in row.params})
    return [k for k in keys if len({repr(row.params.get(k)) for row in rows}) > 1]


def learning_curves(rows: list[ExperimentRow], param: str) -> list[Curve]:
    """One curve per group of rows with equal other params, keeping curves of two or more values."""
    others = [k for k in varying_params(rows) if k != param]
    groups: dict[tuple[str, ...], list[tuple[float, float, str]]] = {}
    for row in rows:
        x = row.params.get(param)
        if row.board_acc is None or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        key = tuple(f"{k}={row.params.get(k)}" for k in others)
        groups.setdefault(key, []).append((float(x), row.board_acc, row.name))
    curves = []
    for key, points in sorted(groups.items()):
        if len({x for x, _, _ in points}) >= 2:
            curves.append(Curve(param, ", ".join(key) or "all experiments", tuple(sorted(points))))
    return curves

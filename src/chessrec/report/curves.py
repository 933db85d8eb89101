"""Learning curves across experiments: board accuracy against one swept param (data size, epochs,
model size, crop size).

Experiments are grouped by every other param that varies in the sweep, so a curve only ever
changes the one param it is drawn against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from chessrec.report.experiments import ExperimentRow, finite_number

class CurveAxis(NamedTuple):
    """How a learning curve names its param: in its title, and on its x axis."""

    title: str
    label: str


#: the params the report draws learning curves against
CURVE_PARAMS = {
    "data.n_games": CurveAxis("data size", "data size: boards rendered (data.n_games x moves_per_game + n_random)"),
    "train.epochs": CurveAxis("epochs", "epochs (train.epochs)"),
    "model.width": CurveAxis("model size", "model size: the (piece) network's width (model.width)"),
    "features.piece_size": CurveAxis("crop size", "crop size: the piece crops' size in px (features.piece_size)"),
}
#: the params that together set the data size; a data-size sweep usually scales them together
DATA_SIZE_PARTS = ("data.n_games", "data.moves_per_game", "data.n_random")


def curve_value(row: ExperimentRow, param: str) -> float | None:
    """The x value of ``row`` on the curve against ``param``.

    Against data size it is the number of boards rendered (games x moves + random positions)
    when all three params are known, so a sweep that scales games and random positions together
    draws one curve; otherwise the param's own value.
    """
    if param == "data.n_games":
        games, moves, extra = (finite_number(row.params.get(k)) for k in DATA_SIZE_PARTS)
        if None not in (games, moves, extra):
            return games * moves + extra
    return finite_number(row.params.get(param))


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
    parts = DATA_SIZE_PARTS if param == "data.n_games" else (param,)
    others = [k for k in varying_params(rows) if k not in parts]
    groups: dict[tuple[str, ...], list[tuple[float, float, str]]] = {}
    for row in rows:
        x = curve_value(row, param)
        if row.board_acc is None or x is None:
            continue
        key = tuple(f"{k}={row.params.get(k)}" for k in others)
        groups.setdefault(key, []).append((x, row.board_acc, row.name))
    curves = []
    for key, points in sorted(groups.items()):
        if len({x for x, _, _ in points}) >= 2:
            curves.append(Curve(param, ", ".join(key) or "all experiments", tuple(sorted(points))))
    return curves

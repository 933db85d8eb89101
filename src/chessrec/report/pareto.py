"""Pareto fronts of board accuracy against a cost, and what each step along a front buys.

A cost axis is one :class:`ExperimentRow` field to minimise (training energy, inference
latency); accuracy is maximised. Accuracy gains are in percentage points of board accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from chessrec.report.experiments import ExperimentRow


@dataclass(frozen=True)
class Axis:
    """A cost to minimise: the row field, the unit shown, and the factor from field to unit."""

    field: str
    unit: str
    label: str
    scale: float = 1.0

    def value(self, row: ExperimentRow) -> float | None:
        raw = getattr(row, self.field)
        return None if raw is None else raw * self.scale


ENERGY = Axis("train_energy_j", "kJ", "training energy", scale=1e-3)
LATENCY = Axis("latency_ms", "ms", "inference latency")


@dataclass(frozen=True)
class Step:
    """One move along a front, from a cheaper to a dearer, more accurate experiment."""

    start: ExperimentRow
    end: ExperimentRow
    gain_points: float
    extra_cost: float
    unit: str

    @property
    def points_per_unit(self) -> float:
        return self.gain_points / self.extra_cost


def usable(rows: list[ExperimentRow], axis: Axis) -> list[ExperimentRow]:
    """Rows with both board accuracy and this axis's cost."""
    return [r for r in rows if r.board_acc is not None and axis.value(r) is not None]


def pareto_front(rows: list[ExperimentRow], axis: Axis) -> list[ExperimentRow]:
    """Non-dominated rows (no other row is as cheap and as accurate), cheapest first.

    Ties are settled deterministically: of rows with equal cost the most accurate stays; of
    rows with equal cost and accuracy, the first by name stays. Rows missing either metric are
    ignored (see :func:`usable`).
    """
    ordered = sorted(usable(rows, axis), key=lambda r: (axis.value(r), -r.board_acc, r.name))
    front: list[ExperimentRow] = []
    for row in ordered:
        if not front or row.board_acc > front[-1].board_acc:
            front.append(row)
    return front


def marginal_gains(front: list[ExperimentRow], axis: Axis) -> list[Step]:
    """Accuracy points gained per extra unit of cost for each consecutive pair on ``front``.

    Along a front cost and accuracy both rise strictly, so every step has a positive cost.
    """
    return [step_between(a, b, axis) for a, b in zip(front, front[1:])]


def step_between(start: ExperimentRow, end: ExperimentRow, axis: Axis) -> Step:
    """The move from ``start`` to the dearer, more accurate ``end``: points gained and extra cost."""
    return Step(start, end, 100.0 * (end.board_acc - start.board_acc), axis.value(end) - axis.value(start), axis.unit)


def efficient_steps(front: list[ExperimentRow], axis: Axis) -> list[Step]:
    """Steps along the front's upper convex hull: from each point, to the later point that gains most per unit.

    A front point whose gain per unit is beaten by a dearer point reached from the same start
    (*extended dominance*, as in cost-effectiveness analysis) is skipped: stopping before it would
    judge a poor intermediate step and miss a good one right after.  Along the hull the gains per
    unit fall step by step, so the first step that falls short of a threshold is where returns
    have really diminished.
    """
    steps, start = [], 0
    while start < len(front) - 1:
        candidates = [step_between(front[start], b, axis) for b in front[start + 1:]]
        best = max(range(len(candidates)), key=lambda k: candidates[k].points_per_unit)  # ties: the nearer
        steps.append(candidates[best])
        start += best + 1
    return steps

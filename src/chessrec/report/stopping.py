"""The stopping rule: when does further refinement stop paying off?

Two documented criteria, each switched off by leaving it ``None`` (``null`` in params.yaml):

* **Goal met** — ``target_board_acc`` (a fraction, like the metric) together with
  ``latency_budget_ms``: of the experiments that reach the target within the budget, choose the
  one that cost least training energy, and stop.
* **Diminishing returns** — walk the training-energy Pareto front from its cheapest point. From
  the current point, a step to any dearer point on the front is *worthwhile* when it gains at
  least ``min_points_per_kj`` board-accuracy points per extra kJ and, when it also costs
  latency, at least ``min_points_per_ms`` points per extra ms; take the worthwhile step that
  gains most per kJ. Where no step is worthwhile, stop. Looking past the next point matters:
  a weak intermediate point (say, the new network trained briefly) must not hide a worthwhile
  one behind it (the same network trained fully), just as extended dominance works in
  cost-effectiveness analysis.

* **Noise** — a step counts as a gain only when its board-accuracy gain is larger than the noise
  of the two measurements: the root sum of squares of the half-widths of both experiments' 95%
  intervals (``board_acc_low``/``_high``). On 200 test boards a few points is noise, and
  recommending a dearer experiment for it would be paying for a seed.

A latency budget alone excludes slower experiments from the choice. When every step still pays
off, the most accurate experiment is recommended and the verdict is "keep going".
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from chessrec.errors import UserError
from chessrec.report.experiments import Excluded, ExperimentRow
from chessrec.report.pareto import ENERGY, Step, pareto_front, step_between


@dataclass(frozen=True)
class StoppingRule:
    """Thresholds of the stopping rule (params.yaml ``report.*``); ``None`` switches one off."""

    min_points_per_kj: float | None = None
    min_points_per_ms: float | None = None
    target_board_acc: float | None = None
    latency_budget_ms: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"report.{f.name} must be a number or null, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        for name in ("min_points_per_kj", "min_points_per_ms"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UserError(f"report.{name} must be >= 0, got {getattr(self, name)}")
        if self.target_board_acc is not None and not 0 < self.target_board_acc <= 1:
            raise UserError(
                f"report.target_board_acc is a fraction in (0, 1] like the metric, got {self.target_board_acc}"
            )
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise UserError(f"report.latency_budget_ms must be > 0, got {self.latency_budget_ms}")

    @property
    def uses_latency(self) -> bool:
        return self.min_points_per_ms is not None or self.latency_budget_ms is not None

    def describe(self) -> list[str]:
        """The rule in plain words, one criterion per line, as the report prints it."""
        off = "off"
        return [
            f"target board accuracy: {_pct(self.target_board_acc) if self.target_board_acc else off}",
            f"latency budget: {f'{self.latency_budget_ms:g} ms' if self.latency_budget_ms else off}",
            "minimum gain per extra kJ of training energy: "
            + (f"{self.min_points_per_kj:g} board-accuracy points" if self.min_points_per_kj is not None else off),
            "minimum gain per extra ms of inference latency: "
            + (f"{self.min_points_per_ms:g} board-accuracy points" if self.min_points_per_ms is not None else off),
        ]


@dataclass(frozen=True)
class Recommendation:
    """Which experiment to settle on, whether to stop optimising, and why in plain words."""

    choice: ExperimentRow | None
    stop: bool
    reason: str
    excluded: tuple[Excluded, ...] = ()
    warnings: tuple[str, ...] = ()
    rejected_step: Step | None = None


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def basis(measured: bool | None) -> str:
    """'measured', 'estimated' or 'unknown' for an ``energy/measured`` flag."""
    return {True: "measured", False: "estimated", None: "unknown"}[measured]


def energy_basis(row: ExperimentRow) -> str:
    """'measured', 'estimated' or 'unknown' for a row's training energy."""
    return basis(row.energy_measured)


def provenance_warnings(rows: list[ExperimentRow]) -> list[str]:
    """Warnings when the rows' training energies are not all of one kind (never mix silently)."""
    by_basis: dict[str, list[str]] = {}
    for row in rows:
        if row.train_energy_j is not None:
            by_basis.setdefault(energy_basis(row), []).append(row.name)
    warnings = []
    if "measured" in by_basis and "estimated" in by_basis:
        warnings.append(
            "training energy is measured for " + ", ".join(by_basis["measured"])
            + " but estimated for " + ", ".join(by_basis["estimated"])
            + ": points per kJ between them compare unlike figures"
        )
    if "unknown" in by_basis:
        warnings.append(
            "training energy of " + ", ".join(by_basis["unknown"])
            + " does not say whether it is measured or estimated (no energy/measured metric)"
        )
    return warnings


def _candidates(rows: list[ExperimentRow], rule: StoppingRule) -> tuple[list[ExperimentRow], list[Excluded]]:
    kept, excluded = [], []
    for row in rows:
        if row.board_acc is None:
            excluded.append(Excluded(row.name, "no board_acc metric"))
        elif row.train_energy_j is None:
            excluded.append(Excluded(row.name, "no training energy metric (energy/fit_j)"))
        elif rule.uses_latency and row.latency_ms is None:
            excluded.append(Excluded(row.name, "no inference latency metric, which the rule needs"))
        elif rule.latency_budget_ms is not None and row.latency_ms > rule.latency_budget_ms:
            excluded.append(Excluded(
                row.name, f"latency {row.latency_ms:.3g} ms is over the budget of {rule.latency_budget_ms:g} ms"
            ))
        else:
            kept.append(row)
    return kept, excluded


def noise_points(step: Step) -> float | None:
    """The step's noise in board-accuracy points (see the module docstring), None without intervals."""
    halves = (step.start.board_acc_half_width, step.end.board_acc_half_width)
    if None in halves:
        return None
    return 100.0 * float(halves[0] ** 2 + halves[1] ** 2) ** 0.5


def _falls_short(step: Step, rule: StoppingRule) -> str | None:
    """Why a step along the energy front does not pay off, or None when it does."""
    noise = noise_points(step)
    if noise is not None and step.gain_points <= noise:
        return (f"gains {step.gain_points:.3g} board-accuracy points, inside the noise of the two measurements "
                f"(+-{noise:.3g} points, 95% intervals)")
    if rule.min_points_per_kj is not None and step.points_per_unit < rule.min_points_per_kj:
        start, end = energy_basis(step.start), energy_basis(step.end)
        kind = start if start == end else f"mixed ({start} → {end})"
        return (f"gains only {step.points_per_unit:.3g} points per kJ of {kind} training energy "
                f"(rule: at least {rule.min_points_per_kj:g})")
    extra_ms = (step.end.latency_ms or 0.0) - (step.start.latency_ms or 0.0)
    if rule.min_points_per_ms is not None and extra_ms > 0 and step.gain_points / extra_ms < rule.min_points_per_ms:
        return (f"gains only {step.gain_points / extra_ms:.3g} points per extra ms of latency "
                f"(rule: at least {rule.min_points_per_ms:g})")
    return None


def recommend(rows: list[ExperimentRow], rule: StoppingRule) -> Recommendation:
    """Apply ``rule`` to the experiments and say which one to settle on, and why."""
    candidates, excluded = _candidates(rows, rule)
    warnings = tuple(provenance_warnings(candidates))
    if not candidates:
        return Recommendation(None, False, "no experiment has the metrics the stopping rule needs"
                              + (" within the latency budget" if rule.latency_budget_ms else "")
                              + "; see the excluded experiments", tuple(excluded), warnings)
    budget = f" within the latency budget of {rule.latency_budget_ms:g} ms" if rule.latency_budget_ms else ""
    if rule.target_board_acc is not None:
        reaching = [r for r in candidates if r.board_acc >= rule.target_board_acc]
        if reaching:
            best = min(reaching, key=lambda r: (r.train_energy_j, -r.board_acc, r.latency_ms or 0.0, r.name))
            reason = (f"{best.name} reaches the target board accuracy of {_pct(rule.target_board_acc)} "
                      f"({_pct(best.board_acc)}){budget} at the lowest training energy of those that do "
                      f"({best.train_energy_j / 1000:.3g} kJ, {energy_basis(best)}): the goal is met, "
                      "stop optimising.")
            return Recommendation(best, True, reason, tuple(excluded), warnings)
    front = pareto_front(candidates, ENERGY)
    missed = (f" No experiment reaches the target of {_pct(rule.target_board_acc)}{budget}."
              if rule.target_board_acc is not None else "")
    position = 0
    while position < len(front) - 1:
        current = front[position]
        steps = [step_between(current, later, ENERGY) for later in front[position + 1:]]
        worthwhile = [k for k, step in enumerate(steps) if _falls_short(step, rule) is None]
        if not worthwhile:
            best = max(steps, key=lambda step: step.points_per_unit)
            reason = (f"no dearer experiment on the training-energy front pays off from {current.name}: the most "
                      f"efficient step, to {best.end.name}, {_falls_short(best, rule)}. Further refinement "
                      f"stops paying off; settle on {current.name} ({_pct(current.board_acc)}).{missed}")
            return Recommendation(current, True, reason, tuple(excluded), warnings, best)
        position += 1 + max(worthwhile, key=lambda k: steps[k].points_per_unit)
    current = front[position]
    if len(front) == 1:
        reason = (f"{current.name} is the only point on the training-energy front, so there is no step to "
                  f"judge; sweep more variants to see whether refinement pays off.{missed}")
    elif rule.min_points_per_kj is None and rule.min_points_per_ms is None:
        reason = f"no minimum gain is configured; {current.name} is the most accurate experiment.{missed}"
    else:
        reason = (f"every step along the training-energy front still pays off; {current.name} is the most "
                  f"accurate ({_pct(current.board_acc)}) and refinement may still pay off: try larger "
                  f"variants.{missed}")
    return Recommendation(current, False, reason, tuple(excluded), warnings)

"""The report's pure core: reading `dvc exp show --json`, Pareto fronts, marginal gains, stopping rule."""

from __future__ import annotations

import pytest

from chessrec.errors import UserError
from chessrec.report.curves import learning_curves
from chessrec.report.experiments import ExperimentRow, parse_exp_show, pool_latency
from chessrec.report.pareto import ENERGY, LATENCY, efficient_steps, marginal_gains, pareto_front
from chessrec.report.stopping import StoppingRule, provenance_warnings, recommend


def row(name, acc, energy_j=None, latency=None, measured=False, **params):
    return ExperimentRow(name=name, rev=name, params=params, board_acc=acc, train_energy_j=energy_j,
                         energy_measured=measured, latency_ms=latency)


def rev_data(params, train=None, evaluate=None):
    """One `data` block shaped as DVC 3.67 prints it (nested params and dvclive metrics)."""
    metrics = {}
    if train is not None:
        metrics["dvclive/train/metrics.json"] = {"data": train}
    if evaluate is not None:
        metrics["dvclive/evaluate/metrics.json"] = {"data": evaluate}
    return {"rev": "x", "timestamp": None, "params": {"params.yaml": {"data": params}}, "metrics": metrics,
            "deps": {}, "outs": {}, "meta": {}}


def exp_entry(name, data, state="success", error=None):
    return {"revs": [{"rev": f"{name}-sha", "name": name, "data": data, "error": error, "experiments": None}],
            "executor": {"state": state, "name": "dvc-task", "local": {}}, "name": name}


def show_json(experiments, baseline_data=None):
    base = baseline_data or rev_data({"model": {"name": "tiny_cnn"}},
                                     {"energy": {"fit_j": 100, "measured": 0}},
                                     {"board_acc": 0.5, "latency": {"model_p50_ms": 2.0}})
    return [{"rev": "workspace", "name": None, "data": base, "error": None, "experiments": None},
            {"rev": "abc1234def", "name": "main", "data": base, "error": None, "experiments": experiments}]


# --- reading dvc exp show --json ------------------------------------------------------------

def test_exp_show_rows_read_nested_dvclive_metrics_per_file():
    data = rev_data({"model": {"name": "resnet18"}, "evaluate": {"best_decoder": "greedy"}},
                    train={"energy": {"fit_j": 2500.0, "measured": 1}, "val": {"acc": 0.8}},
                    evaluate={"board_acc": 0.7, "square_acc": 0.99, "latency": {"model_p50_ms": 4.5},
                              "energy": {"measured": 0, "inference_j_per_board": 0.3},
                              "decoders": {"argmax": {"latency_p50_ms": 9.0}, "greedy": {"latency_p50_ms": 0.5}}})
    table = parse_exp_show(show_json([exp_entry("big", data)]))
    assert table.baseline == "main"
    big = {r.name: r for r in table.rows}["big"]
    assert big.params == {"model.name": "resnet18", "evaluate.best_decoder": "greedy"}
    # latency = model p50 + the best decoder's decode p50
    assert (big.board_acc, big.square_acc, big.train_energy_j, big.latency_ms) == (0.7, 0.99, 2500.0, 5.0)
    # the train file's energy/measured is the training energy's; the evaluate file's the inference's
    assert big.energy_measured is True and big.inference_energy_measured is False
    assert big.inference_j_per_board == 0.3


def test_exp_show_accepts_flat_slash_metric_keys():
    data = rev_data({}, train={"energy/fit_j": 10.0, "energy/measured": 0},
                    evaluate={"board_acc": 0.2, "decoders/argmax/latency_p50_ms": 1.5})
    table = parse_exp_show(show_json([exp_entry("flat", data)]), ["decoders/argmax/latency_p50_ms"])
    flat = {r.name: r for r in table.rows}["flat"]
    assert (flat.train_energy_j, flat.energy_measured, flat.latency_ms) == (10.0, False, 1.5)


def test_failed_and_queued_experiments_are_excluded_not_read_as_stale_metrics():
    good = rev_data({}, {"energy": {"fit_j": 1}}, {"board_acc": 0.9})
    stale = rev_data({}, {"energy": {"fit_j": 100}}, {"board_acc": 0.5})  # DVC shows the baseline's
    entries = [exp_entry("ok", good), exp_entry("broken", stale, "failed", {"msg": "Experiment run failed"}),
               exp_entry("waiting", rev_data({}), "queued")]
    table = parse_exp_show(show_json(entries))
    assert [r.name for r in table.rows] == ["main", "ok"]
    reasons = {e.name: e.reason for e in table.excluded}
    assert "failed" in reasons["broken"] and "queued" in reasons["waiting"]


def test_experiment_without_board_acc_is_excluded_with_why():
    table = parse_exp_show(show_json([exp_entry("no-eval", rev_data({}, {"energy": {"fit_j": 3}}))]))
    assert [(e.name, "board_acc" in e.reason) for e in table.excluded] == [("no-eval", True)]


def test_non_finite_or_partial_metrics_are_treated_as_missing():
    data = rev_data({"evaluate": {"best_decoder": "argmax"}}, {"energy": {"fit_j": float("nan")}},
                    {"board_acc": 0.4, "latency": {"model_p50_ms": 2.0}})  # no decode latency
    nan_row = {r.name: r for r in parse_exp_show(show_json([exp_entry("nan", data)])).rows}["nan"]
    assert nan_row.train_energy_j is None and nan_row.latency_ms is None


def test_exp_show_without_baseline_commit_is_a_user_error():
    with pytest.raises(UserError, match="no baseline commit"):
        parse_exp_show([{"rev": "workspace", "name": None, "data": {}, "experiments": None}])


# --- Pareto front and marginal gains ----------------------------------------------------------

def test_pareto_front_keeps_only_non_dominated_rows_cheapest_first():
    rows = [row("a", 0.50, 1000), row("b", 0.60, 2000), row("dominated", 0.55, 3000), row("c", 0.80, 5000)]
    assert [r.name for r in pareto_front(rows, ENERGY)] == ["a", "b", "c"]


def test_pareto_front_ties_are_settled_deterministically():
    rows = [row("z-twin", 0.7, 1000), row("a-twin", 0.7, 1000),  # identical: first by name stays
            row("same-cost-worse", 0.6, 1000), row("same-acc-dearer", 0.7, 4000), row("top", 0.9, 4000)]
    assert [r.name for r in pareto_front(rows, ENERGY)] == ["a-twin", "top"]
    assert [r.name for r in pareto_front(list(reversed(rows)), ENERGY)] == ["a-twin", "top"]


def test_pareto_front_ignores_rows_missing_the_axis_metric():
    rows = [row("no-energy", 0.99, None, 3.0), row("ok", 0.5, 100, 9.0)]
    assert [r.name for r in pareto_front(rows, ENERGY)] == ["ok"]
    assert [r.name for r in pareto_front(rows, LATENCY)] == ["no-energy"]


def test_pareto_front_of_a_single_experiment_is_itself_with_no_steps():
    front = pareto_front([row("only", 0.4, 100)], ENERGY)
    assert [r.name for r in front] == ["only"] and marginal_gains(front, ENERGY) == []


def test_marginal_gains_are_points_per_kj_and_per_ms():
    rows = [row("a", 0.50, 1000, 2.0), row("b", 0.60, 3000, 4.0), row("c", 0.61, 13000, 14.0)]
    energy = marginal_gains(pareto_front(rows, ENERGY), ENERGY)
    assert [(s.start.name, s.end.name) for s in energy] == [("a", "b"), ("b", "c")]
    assert energy[0].gain_points == pytest.approx(10.0) and energy[0].extra_cost == pytest.approx(2.0)
    assert energy[0].points_per_unit == pytest.approx(5.0)   # 10 points / 2 kJ
    assert energy[1].points_per_unit == pytest.approx(0.1)   # 1 point / 10 kJ
    latency = marginal_gains(pareto_front(rows, LATENCY), LATENCY)
    assert [s.points_per_unit for s in latency] == pytest.approx([5.0, 0.1])  # per ms


# --- stopping rule --------------------------------------------------------------------------

def test_stopping_rule_stops_before_the_first_step_gaining_too_little_per_kj():
    rows = [row("a", 0.50, 1000, 2.0), row("b", 0.60, 3000, 2.0), row("c", 0.61, 13000, 2.0)]
    rec = recommend(rows, StoppingRule(min_points_per_kj=1.0))
    assert rec.choice.name == "b" and rec.stop
    assert rec.rejected_step.end.name == "c"
    assert "0.1 points per kJ" in rec.reason and "estimated" in rec.reason


def test_stopping_rule_rejects_a_step_that_costs_too_much_latency():
    rows = [row("a", 0.50, 1000, 2.0), row("b", 0.60, 3000, 202.0)]  # +10 points for +200 ms
    rec = recommend(rows, StoppingRule(min_points_per_kj=1.0, min_points_per_ms=0.5))
    assert rec.choice.name == "a" and rec.stop and "per extra ms" in rec.reason


def test_efficient_steps_skip_a_front_point_a_dearer_one_beats_per_kj():
    # b gains 1 point per kJ from a, c gains 2.5 per kJ from a: the hull goes a -> c -> d
    rows = [row("a", 0.10, 1000), row("b", 0.11, 2000), row("c", 0.20, 5000), row("d", 0.21, 10000)]
    steps = efficient_steps(pareto_front(rows, ENERGY), ENERGY)
    assert [(s.start.name, s.end.name) for s in steps] == [("a", "c"), ("c", "d")]
    assert steps[0].points_per_unit == pytest.approx(2.5) and steps[1].points_per_unit == pytest.approx(0.2)
    assert [s.end.name for s in efficient_steps(pareto_front(rows[:1], ENERGY), ENERGY)] == []


def test_stopping_rule_does_not_stop_on_a_poor_step_that_a_later_point_makes_worthwhile():
    # plain -> short is weak per ms (+4 points, +8.4 ms) but plain -> base pays (+8.5 points, +8.4 ms)
    rows = [row("plain", 0.054, 4400, 6.7), row("short", 0.094, 5000, 15.1), row("base", 0.139, 8000, 15.1),
            row("long", 0.141, 16000, 15.1)]
    rec = recommend(rows, StoppingRule(min_points_per_kj=0.5, min_points_per_ms=0.5))
    assert rec.choice.name == "base" and rec.stop
    assert rec.rejected_step.start.name == "base" and rec.rejected_step.end.name == "long"


def test_a_gain_inside_both_experiments_intervals_is_not_counted_as_a_gain():
    # +4 points for 1 kJ would pay 4 points per kJ, but both boards figures are +-6 points (200 boards)
    noisy = [ExperimentRow(name=n, rev=n, board_acc=acc, board_acc_low=acc - 0.06, board_acc_high=acc + 0.06,
                           train_energy_j=e, energy_measured=True, latency_ms=2.0)
             for n, acc, e in (("a", 0.50, 1000), ("b", 0.54, 2000))]
    rec = recommend(noisy, StoppingRule(min_points_per_kj=1.0))
    assert rec.choice.name == "a" and rec.stop and "inside the noise" in rec.reason
    precise = [ExperimentRow(name=r.name, rev=r.rev, board_acc=r.board_acc, board_acc_low=r.board_acc - 0.01,
                             board_acc_high=r.board_acc + 0.01, train_energy_j=r.train_energy_j,
                             energy_measured=True, latency_ms=2.0) for r in noisy]
    assert recommend(precise, StoppingRule(min_points_per_kj=1.0)).choice.name == "b"


def test_exp_show_rows_read_the_accuracy_intervals():
    data = rev_data({"model": {"name": "tiny_cnn"}}, {"energy": {"fit_j": 100, "measured": 1}},
                    {"board_acc": 0.5, "board_acc_low": 0.43, "board_acc_high": 0.57, "square_acc": 0.9,
                     "square_acc_low": 0.88, "square_acc_high": 0.92})
    (r,) = parse_exp_show(show_json([exp_entry("e", data)])).rows[1:]
    assert (r.board_acc_low, r.board_acc_high, r.square_acc_low, r.square_acc_high) == (0.43, 0.57, 0.88, 0.92)
    assert r.board_acc_half_width == pytest.approx(0.07)


def test_exp_show_rows_read_the_adapt_and_broadcast_stages_figures_and_the_table_shows_them():
    from chessrec.report.render import _experiment_table

    data = rev_data({"model": {"name": "tiny_cnn"}}, {"energy": {"fit_j": 100, "measured": 1}}, {"board_acc": 0.5})
    data["metrics"]["dvclive/adapt/metrics.json"] = {"data": {"base": {"square_acc": 0.9}, "adapted": {"square_acc": 0.95}}}
    data["metrics"]["dvclive/broadcast/metrics.json"] = {"data": {"beam": {"move_acc": 0.987, "game_acc": 0.95}}}
    (r,) = parse_exp_show(show_json([exp_entry("e", data)])).rows[1:]
    assert (r.new_set_base_square_acc, r.new_set_adapted_square_acc) == (0.9, 0.95)
    assert (r.broadcast_move_acc, r.broadcast_game_acc) == (0.987, 0.95)
    table = "\n".join(_experiment_table([r]))
    assert "90.00% → 95.00%" in table and "98.7% / 95%" in table


def test_stopping_rule_keeps_going_while_every_step_pays_off():
    rows = [row("a", 0.50, 1000, 2.0), row("b", 0.60, 3000, 3.0)]
    rec = recommend(rows, StoppingRule(min_points_per_kj=1.0, min_points_per_ms=0.5))
    assert rec.choice.name == "b" and not rec.stop and "still pays off" in rec.reason


def test_target_and_budget_met_chooses_cheapest_experiment_that_meets_both():
    rows = [row("fast-cheap", 0.80, 1000, 5.0), row("ok", 0.91, 4000, 8.0), row("ok-dearer", 0.95, 9000, 9.0),
            row("too-slow", 0.93, 2000, 80.0)]
    rec = recommend(rows, StoppingRule(target_board_acc=0.9, latency_budget_ms=50.0, min_points_per_kj=100.0))
    assert rec.choice.name == "ok" and rec.stop and "goal is met" in rec.reason
    assert {e.name for e in rec.excluded} == {"too-slow"}


def test_unreached_target_is_stated_in_the_reason():
    rec = recommend([row("a", 0.5, 1000, 1.0)], StoppingRule(target_board_acc=0.9))
    assert rec.choice.name == "a" and not rec.stop
    assert "only point" in rec.reason and "No experiment reaches the target of 90.0%" in rec.reason


def test_rows_missing_metrics_are_excluded_from_the_recommendation_with_why():
    rows = [row("no-energy", 0.9, None, 1.0), row("no-latency", 0.9, 500, None), row("ok", 0.4, 100, 1.0)]
    rec = recommend(rows, StoppingRule(latency_budget_ms=10.0))
    assert rec.choice.name == "ok"
    reasons = {e.name: e.reason for e in rec.excluded}
    assert "energy" in reasons["no-energy"] and "latency" in reasons["no-latency"]


def test_no_usable_experiment_gives_no_choice():
    rec = recommend([row("slow", 0.9, 100, 99.0)], StoppingRule(latency_budget_ms=10.0))
    assert rec.choice is None and not rec.stop and "over the budget" in rec.excluded[0].reason


def test_mixing_measured_and_estimated_energy_is_warned_about():
    rows = [row("gpu", 0.7, 1000, 1.0, measured=True), row("cpu", 0.6, 500, 1.0, measured=False)]
    rec = recommend(rows, StoppingRule(min_points_per_kj=1.0))
    assert len(rec.warnings) == 1 and "measured for gpu but estimated for cpu" in rec.warnings[0]
    assert "mixed (estimated → measured)" in recommend(rows, StoppingRule(min_points_per_kj=1000.0)).reason


def test_energy_of_unknown_provenance_is_warned_about():
    assert "cpu" in provenance_warnings([row("cpu", 0.6, 500, measured=None)])[0]
    assert provenance_warnings([row("a", 0.6, 500, measured=True), row("b", 0.7, 900, measured=True)]) == []


@pytest.mark.parametrize("key, value", [("min_points_per_kj", -1), ("target_board_acc", 90),
                                        ("latency_budget_ms", 0), ("min_points_per_ms", "fast")])
def test_stopping_rule_rejects_bad_thresholds_naming_the_key(key, value):
    with pytest.raises(UserError, match=f"report.{key}"):
        StoppingRule(**{key: value})


# --- learning curves ------------------------------------------------------------------------

def test_learning_curves_group_by_the_other_swept_params():
    rows = [row("t4", 0.3, **{"model.name": "tiny", "data.n_games": 4, "train.epochs": 1}),
            row("t8", 0.5, **{"model.name": "tiny", "data.n_games": 8, "train.epochs": 1}),
            row("r4", 0.4, **{"model.name": "resnet", "data.n_games": 4, "train.epochs": 1}),
            row("r8", 0.7, **{"model.name": "resnet", "data.n_games": 8, "train.epochs": 1}),
            row("t4e2", 0.35, **{"model.name": "tiny", "data.n_games": 4, "train.epochs": 2})]
    curves = learning_curves(rows, "data.n_games")
    assert [(c.label, [p[2] for p in c.points]) for c in curves] == [
        ("model.name=resnet, train.epochs=1", ["r4", "r8"]), ("model.name=tiny, train.epochs=1", ["t4", "t8"])]
    epochs = learning_curves(rows, "train.epochs")
    assert [[p[0] for p in c.points] for c in epochs] == [[1.0, 2.0]]


def test_model_size_curve_joins_runs_that_differ_only_in_width():
    """The default sweep's wide piece network is the model-size point beside the baseline; a run
    that changes the width and the data as well belongs to no curve against width."""
    rows = [row("main", 0.636, **{"model.width": 16, "data.n_games": 100}),
            row("width-32", 0.697, **{"model.width": 32, "data.n_games": 100}),
            row("wide-and-double", 0.72, **{"model.width": 32, "data.n_games": 200})]
    curves = learning_curves(rows, "model.width")
    assert [[(x, name) for x, _, name in c.points] for c in curves] == [[(16.0, "main"), (32.0, "width-32")]]


def test_crop_size_curve_leaves_out_a_single_network_whose_piece_size_is_null():
    rows = [row("main", 0.636, **{"features.piece_size": 40}),
            row("piece-48", 0.63, **{"features.piece_size": 48}),
            row("single-network", 0.56, **{"features.piece_size": None})]
    (curve,) = learning_curves(rows, "features.piece_size")
    assert [(x, name) for x, _, name in curve.points] == [(40.0, "main"), (48.0, "piece-48")]


def test_latency_of_one_network_is_pooled_across_its_runs_but_not_across_networks():
    rows = [row("base", 0.14, 8000, 13.4, **{"model.name": "tiny_cnn", "train.epochs": 20}),
            row("short", 0.09, 5000, 16.7, **{"model.name": "tiny_cnn", "train.epochs": 10}),
            row("long", 0.16, 16000, 14.0, **{"model.name": "tiny_cnn", "train.epochs": 40}),
            row("other", 0.08, 9000, 12.0, **{"model.name": "resnet18", "train.epochs": 20})]
    pooled = {r.name: r for r in pool_latency(rows)}
    assert [pooled[n].latency_ms for n in ("base", "short", "long")] == [14.0, 14.0, 14.0]
    assert pooled["base"].latency_runs == 3
    assert pooled["other"].latency_ms == 12.0 and pooled["other"].latency_runs == 1


def test_data_size_curve_counts_rendered_boards_when_games_and_random_positions_scale_together():
    size = {"data.moves_per_game": 20}
    rows = [row("half", 0.13, **size, **{"data.n_games": 30, "data.n_random": 75}),
            row("base", 0.14, **size, **{"data.n_games": 60, "data.n_random": 150}),
            row("double", 0.21, **size, **{"data.n_games": 120, "data.n_random": 300})]
    (curve,) = learning_curves(rows, "data.n_games")
    assert [(x, name) for x, _, name in curve.points] == [(675.0, "half"), (1350.0, "base"), (2700.0, "double")]

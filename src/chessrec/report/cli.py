"""``chessrec report``: compare the experiments of the current baseline and recommend when to stop."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from chessrec.config import load_params
from chessrec.errors import UserError
from chessrec.report.experiments import LATENCY_METRICS, load_exp_json, parse_exp_show, run_exp_show
from chessrec.report.stopping import StoppingRule


def _threshold(text: str) -> float | None:
    """A number, or ``off`` to switch a criterion of the stopping rule off."""
    if text.lower() in ("off", "none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="compare experiments (dvc exp show) and recommend when to stop optimising",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file with the stopping rule under report.* (default: params.yaml)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="DVC repository to read (default: .)")
    parser.add_argument("--rev", help="baseline commit whose experiments to compare (default: HEAD)")
    parser.add_argument("--exp-json", type=Path,
                        help="read saved `dvc exp show --json` output instead of running dvc")
    parser.add_argument("--latency-metric", dest="latency_metrics", action="append", metavar="KEY",
                        help="evaluate metric counted as inference latency; repeat to sum several "
                             f"(default: {' + '.join(LATENCY_METRICS)})")
    for key, what in (("min_points_per_kj", "minimum board-accuracy points per extra kJ"),
                      ("min_points_per_ms", "minimum board-accuracy points per extra ms"),
                      ("target_board_acc", "target board accuracy, a fraction such as 0.9"),
                      ("latency_budget_ms", "latency budget in ms")):
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=_threshold,
                            default=argparse.SUPPRESS, help=f"override report.{key}: {what}, or 'off'")
    parser.set_defaults(func=run)


def stopping_rule(args: argparse.Namespace) -> StoppingRule:
    """report.* of the params file, with command-line overrides applied."""
    configured = StoppingRule(**load_params(args.params).report.model_dump())
    overrides = {k: getattr(args, k) for k in StoppingRule.__dataclass_fields__ if hasattr(args, k)}
    return replace(configured, **overrides)


def run(args: argparse.Namespace) -> int:
    from chessrec.report.render import write_report  # matplotlib: only when a report is written

    rule = stopping_rule(args)
    if args.exp_json:
        try:
            text = args.exp_json.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{args.exp_json}: cannot read ({exc.strerror})") from None
        records = load_exp_json(text, str(args.exp_json))
    else:
        records = run_exp_show(args.repo, args.rev)
    table = parse_exp_show(records, args.latency_metrics or LATENCY_METRICS)
    path = write_report(table, rule, args.out)
    print(f"wrote {path} ({len(table.rows)} experiments, {len(table.excluded)} excluded)")
    return 0

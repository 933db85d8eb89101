"""Experiments of the current baseline, read from DVC's own record (`dvc exp show --json`).

We run ``python -m dvc exp show --json`` (the dvc installed beside chessrec) rather than call
``dvc.repo.Repo``: the command's JSON is DVC's documented, stable interface; its Python internals
are not. The JSON is a list of commits (the workspace first, then the baseline) whose
``experiments`` list holds one entry per experiment, each with ``revs[0].data.{params,metrics}``
keyed by file. A failed experiment still carries the baseline's stale metrics, so its state
decides, not its numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from chessrec.errors import UserError

#: metric files of the pipeline (see dvc.yaml); keys inside them are flattened with "/"
TRAIN_METRICS = "dvclive/train/metrics.json"
EVALUATE_METRICS = "dvclive/evaluate/metrics.json"
EXPORT_METRICS = "dvclive/export/metrics.json"
ADAPT_METRICS = "dvclive/adapt/metrics.json"
BROADCAST_METRICS = "dvclive/broadcast/metrics.json"
#: deployed artefacts the export stage scores (chessrec.deploy.compare.VARIANTS); each becomes a row
#: of its own, named "<experiment> · <artefact>", with its own accuracy, latency and inference energy
ARTEFACTS = ("torch", "onnx_fp32", "onnx_int8")
ARTEFACT_PARAM = "export.artefact"
#: inference latency per board = model p50 + the best decoder's decode p50 (an approximation of the
#: end-to-end p50); ``{best_decoder}`` is filled from the experiment's ``evaluate.best_decoder``
LATENCY_METRICS = ("latency/model_p50_ms", "decoders/{best_decoder}/latency_p50_ms")


@dataclass(frozen=True)
class ExperimentRow:
    """One finished experiment: its params and the metrics the report reasons about.

    Metrics absent from the experiment are ``None``; ``energy_measured`` is ``None`` when the
    experiment did not say whether its training energy was measured or estimated.
    """

    name: str
    rev: str
    params: dict[str, object] = field(default_factory=dict)
    board_acc: float | None = None
    square_acc: float | None = None
    board_acc_low: float | None = None  # 95% interval of board_acc (evaluate's Wilson interval)
    board_acc_high: float | None = None
    square_acc_low: float | None = None
    square_acc_high: float | None = None
    train_energy_j: float | None = None
    energy_measured: bool | None = None
    latency_ms: float | None = None
    inference_j_per_board: float | None = None
    inference_energy_measured: bool | None = None
    latency_runs: int = 1  # measurements behind latency_ms (see pool_latency)
    new_set_base_square_acc: float | None = None  # the adapt stage: a set never trained on, before adapting
    new_set_adapted_square_acc: float | None = None  # ... and after adapting on a few photos of it
    broadcast_move_acc: float | None = None  # the broadcast stage, beam decoder: moves right up to the first wrong
    broadcast_game_acc: float | None = None  # ... and games entirely right

    @property
    def board_acc_half_width(self) -> float | None:
        """Half the width of board_acc's 95% interval (None when the experiment logged none)."""
        if self.board_acc_low is None or self.board_acc_high is None:
            return None
        return (self.board_acc_high - self.board_acc_low) / 2


@dataclass(frozen=True)
class Excluded:
    """An experiment (or an experiment left out of one analysis) and why, in plain words."""

    name: str
    reason: str


@dataclass(frozen=True)
class ExperimentTable:
    """What the report works on: the baseline's usable experiments and the ones left out."""

    baseline: str
    rows: tuple[ExperimentRow, ...]
    excluded: tuple[Excluded, ...]


def flatten(tree: object, sep: str, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level, keys joined by ``sep`` (dvclive nests ``a/b`` metrics as dicts)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, object] = {}
    for key, value in tree.items():
        flat.update(flatten(value, sep, f"{prefix}{sep}{key}" if prefix else str(key)))
    return flat


def finite_number(value: object) -> float | None:
    """A finite float, or None for anything else (missing, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _flag(value: object) -> bool | None:
    number = finite_number(value)
    return None if number is None else number >= 0.5


def _file_data(files: dict | None, suffix: str) -> dict[str, object]:
    """Flattened data of the one metrics/params file whose path ends with ``suffix``."""
    for path, entry in (files or {}).items():
        if path.replace("\\", "/").endswith(suffix) and isinstance(entry, dict):
            return flatten(entry.get("data") or {}, "/")
    return {}


def _latency(evaluate: dict[str, object], params: dict[str, object], keys: Sequence[str]) -> float | None:
    """Sum of the latency metrics ``keys`` (templates, see :data:`LATENCY_METRICS`); None if any is missing."""
    best = params.get("evaluate.best_decoder")
    values = [finite_number(evaluate.get(key.format(best_decoder=best))) for key in keys]
    return None if not values or None in values else sum(values)


def row_from_data(name: str, rev: str, data: dict, latency_metrics: Sequence[str] = LATENCY_METRICS) -> ExperimentRow:
    """An :class:`ExperimentRow` from one ``data`` block of ``dvc exp show --json``."""
    params: dict[str, object] = {}
    for entry in (data.get("params") or {}).values():
        if isinstance(entry, dict):
            params.update(flatten(entry.get("data") or {}, "."))
    train = _file_data(data.get("metrics"), TRAIN_METRICS)
    evaluate = _file_data(data.get("metrics"), EVALUATE_METRICS)
    adapt = _file_data(data.get("metrics"), ADAPT_METRICS)
    broadcast = _file_data(data.get("metrics"), BROADCAST_METRICS)
    return ExperimentRow(
        name=name,
        rev=rev,
        params=params,
        board_acc=finite_number(evaluate.get("board_acc")),
        square_acc=finite_number(evaluate.get("square_acc")),
        board_acc_low=finite_number(evaluate.get("board_acc_low")),
        board_acc_high=finite_number(evaluate.get("board_acc_high")),
        square_acc_low=finite_number(evaluate.get("square_acc_low")),
        square_acc_high=finite_number(evaluate.get("square_acc_high")),
        train_energy_j=finite_number(train.get("energy/fit_j")),
        energy_measured=_flag(train.get("energy/measured")),
        latency_ms=_latency(evaluate, params, latency_metrics),
        inference_j_per_board=finite_number(evaluate.get("energy/inference_j_per_board")),
        inference_energy_measured=_flag(evaluate.get("energy/measured")),
        new_set_base_square_acc=finite_number(adapt.get("base/square_acc")),
        new_set_adapted_square_acc=finite_number(adapt.get("adapted/square_acc")),
        broadcast_move_acc=finite_number(broadcast.get("beam/move_acc")),
        broadcast_game_acc=finite_number(broadcast.get("beam/game_acc")),
    )


def artefact_rows(row: ExperimentRow, data: dict) -> list[ExperimentRow]:
    """The experiment's exported artefacts as rows: same training, their own accuracy and inference cost.

    Latency is the artefact's model latency (on the export stage's thread count) plus the best
    decoder's; training energy is the experiment's, since exporting trains nothing.
    """
    export = _file_data(data.get("metrics"), EXPORT_METRICS)
    evaluate = _file_data(data.get("metrics"), EVALUATE_METRICS)
    decode_ms = finite_number(evaluate.get(f"decoders/{row.params.get('evaluate.best_decoder')}/latency_p50_ms"))
    rows = []
    for artefact in ARTEFACTS:
        value = {key: finite_number(export.get(f"{artefact}/{key}")) for key in (
            "board_acc", "board_acc_low", "board_acc_high", "square_acc", "square_acc_low", "square_acc_high",
            "latency_p50_ms", "energy_j_per_board", "energy_measured")}
        if value["board_acc"] is None:
            continue
        latency = None if value["latency_p50_ms"] is None or decode_ms is None else value["latency_p50_ms"] + decode_ms
        rows.append(replace(
            row, name=f"{row.name} · {artefact}", params={**row.params, ARTEFACT_PARAM: artefact},
            **{key: value[key] for key in ("board_acc", "board_acc_low", "board_acc_high", "square_acc",
                                           "square_acc_low", "square_acc_high")},
            latency_ms=latency, inference_j_per_board=value["energy_j_per_board"],
            new_set_base_square_acc=None, new_set_adapted_square_acc=None,  # the adapt and broadcast stages
            broadcast_move_acc=None, broadcast_game_acc=None,  # score the checkpoint, not the artefacts
            inference_energy_measured=None if value["energy_measured"] is None else value["energy_measured"] >= 0.5,
        ))
    return rows


def _unfinished_reason(entry: dict) -> str | None:
    """Why an experiment entry has no trustworthy metrics, or None when it finished."""
    state = ((entry.get("executor") or {}).get("state") or "").lower()
    revs = entry.get("revs") or []
    if state in ("queued", "running"):
        return f"not finished (state: {state})"
    if state == "failed" or any(rev.get("error") for rev in revs):
        return "run failed (its metrics would be the baseline's, so they are ignored)"
    if not revs or not revs[0].get("data"):
        return "no data recorded for this experiment"
    return None


def parse_exp_show(records: list, latency_metrics: Sequence[str] = LATENCY_METRICS) -> ExperimentTable:
    """The baseline commit and its experiments from parsed ``dvc exp show --json`` output.

    The workspace row is skipped (it repeats the baseline or an applied experiment). Rows that
    did not finish or have no ``board_acc`` are listed as excluded, with why.
    """
    if not isinstance(records, list):
        raise UserError("dvc exp show --json: expected a JSON list of commits")
    commits = [r for r in records if isinstance(r, dict) and r.get("rev") != "workspace"]
    if not commits:
        raise UserError("dvc exp show --json lists no baseline commit; commit the pipeline first")
    baseline = commits[0]
    base_name = baseline.get("name") or str(baseline.get("rev", ""))[:7]
    candidates: list[tuple[str, str, dict | None, str | None]] = [
        (base_name, str(baseline.get("rev", "")), baseline.get("data"),
         "baseline has no data: " + str(baseline["error"]) if baseline.get("error") else None)
    ]
    for entry in baseline.get("experiments") or []:
        revs = entry.get("revs") or [{}]
        name = entry.get("name") or revs[0].get("name") or str(revs[0].get("rev", ""))[:7]
        candidates.append((name, str(revs[0].get("rev", "")), revs[0].get("data"), _unfinished_reason(entry)))
    rows, excluded = [], []
    for name, rev, data, reason in candidates:
        row = row_from_data(name, rev, data or {}, latency_metrics)
        if reason is None and row.board_acc is None:
            reason = "no board_acc metric (did the evaluate stage run?)"
        if reason is None:
            rows += [row, *artefact_rows(row, data or {})]
        else:
            excluded.append(Excluded(name, reason))
    return ExperimentTable(base_name, tuple(pool_latency(rows)), tuple(excluded))


#: params that decide what runs at inference time (prefixes end with "."): experiments agreeing on all
#: of them run the same network on the same inputs, however long or on what data it was trained
INFERENCE_PARAMS = ("model.", "features.", "train.head", "trainer.accelerator", "trainer.precision",
                    "evaluate.best_decoder", "evaluate.topk", "evaluate.strict", ARTEFACT_PARAM, "export.threads")


def inference_signature(row: ExperimentRow) -> tuple[tuple[str, str], ...]:
    """The row's values of :data:`INFERENCE_PARAMS`: equal signatures, equal inference work."""
    def counts(key: str) -> bool:
        return any(key.startswith(p) if p.endswith(".") else key == p for p in INFERENCE_PARAMS)

    return tuple(sorted((k, repr(v)) for k, v in row.params.items() if counts(k)))


def pool_latency(rows: Sequence[ExperimentRow]) -> list[ExperimentRow]:
    """Give experiments that run the same network at inference one latency: the median of their runs.

    Latency is a property of the network and the machine, not of training; two runs of one
    network differ only by measurement noise (13.3 to 29.3 ms p50 over six runs here), which the stopping rule
    would otherwise read as a cost or a saving.  ``latency_runs`` says how many runs were pooled.
    """
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        if row.latency_ms is not None:
            groups.setdefault(inference_signature(row), []).append(row.latency_ms)
    pooled = []
    for row in rows:
        runs = groups.get(inference_signature(row)) if row.latency_ms is not None else None
        if runs and len(runs) > 1:
            row = replace(row, latency_ms=float(np.median(runs)), latency_runs=len(runs))
        pooled.append(row)
    return pooled


def run_exp_show(repo: Path, rev: str | None = None) -> list:
    """Parsed JSON of ``dvc exp show --json`` run in ``repo`` (experiments of HEAD or ``rev``)."""
    # the dvc of this very environment, whatever PATH says
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json"] + (["--rev", rev] if rev else [])
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UserError(f"dvc exp show failed in {repo}: {last}")
    return load_exp_json(done.stdout, "dvc exp show --json")


def load_exp_json(text: str, source: str) -> list:
    """JSON text of ``dvc exp show --json`` -> list, with a clear error naming ``source``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc

"""The deployed artefacts scored side by side: torch, ONNX fp32 and ONNX int8 on the same test crops.

What ships must be measured, not assumed to match what was trained: each variant runs the same
test boards through the same decoder, with its latency timed on one CPU thread (one board at a
time, as on a small device next to the board) and its inference energy in its own window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chessrec.decoding import DecodeOptions, decode_sequence
from chessrec.energy import EnergyMeter
from chessrec.evaluation import model_latency_per_board
from chessrec.features import crops_by_spec
from chessrec.inference.model import SquareModel, check_board_crops
from chessrec.metrics import evaluate_predictions, game_sequences

#: the artefacts the export stage scores, in table order
VARIANTS = ("torch", "onnx_fp32", "onnx_int8")
#: accuracy figures kept per variant (the best decoder's)
ACCURACY_KEYS = ("square_acc", "square_acc_low", "square_acc_high", "board_acc", "board_acc_low", "board_acc_high")


@dataclass(frozen=True)
class Variant:
    """One artefact to score: the loaded model and the file it came from."""

    model: SquareModel
    path: Path


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block (ONNX sessions get their thread count when created)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_variants(variants: Mapping[str, Variant], features: Mapping[str, np.ndarray], best_decoder: str,
                   options: DecodeOptions, energy: Mapping[str, float], threads: int = 1,
                   latency_boards: int = 32) -> dict[str, dict[str, float]]:
    """Per variant: accuracy with intervals, latency on ``threads`` threads, energy per board, file size,
    and the largest probability difference from the first variant (the reference)."""
    labels = features["labels"]
    sequences = game_sequences(features["game_id"], features["move_id"])
    results: dict[str, dict[str, float]] = {}
    reference = None
    for name, variant in variants.items():
        crops = check_board_crops(variant.model.crop_specs, crops_by_spec(features))
        with torch_threads(threads):
            latency = model_latency_per_board(variant.model, {k: c[:latency_boards] for k, c in crops.items()})
            with EnergyMeter(**dict(energy)) as meter:
                meter.begin_window("inference")
                probs = variant.model.predict_proba(crops)
                for idx in sequences:
                    decode_sequence(best_decoder, probs[idx], options)
                window = meter.end_window("inference")
        evaluation = evaluate_predictions(probs, labels, features["game_id"], features["move_id"], [best_decoder],
                                          options)
        reference = probs if reference is None else reference
        results[name] = {
            **{key: evaluation.metrics[best_decoder][key] for key in ACCURACY_KEYS},
            "latency_p50_ms": float(np.percentile(latency, 50) * 1e3),
            "latency_p95_ms": float(np.percentile(latency, 95) * 1e3),
            "energy_j_per_board": window.total_energy_j / len(labels),
            "energy_measured": float(not window.is_estimate),
            "size_kb": variant.path.stat().st_size / 1024,
            "max_prob_diff": float(np.abs(probs - reference).max()),
        }
    return results


def comparison_table(results: Mapping[str, Mapping[str, float]], best_decoder: str, threads: int) -> str:
    """Markdown: the variants side by side, with what each figure means."""
    lines = ["# Deployed artefacts on the test split", "",
             f"Decoder `{best_decoder}`; latency is the model alone on one board at a time, {threads} CPU thread(s).",
             "", "| artefact | square acc [95%] | board acc [95%] | latency p50 ms | p95 ms | J / board | size kB "
             "| max |p - p_torch| |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        energy = f"{r['energy_j_per_board']:.3f}" + ("" if r["energy_measured"] else " (est.)")
        lines.append(
            f"| {name} | {r['square_acc']:.4f} [{r['square_acc_low']:.4f}, {r['square_acc_high']:.4f}] "
            f"| {r['board_acc']:.3f} [{r['board_acc_low']:.3f}, {r['board_acc_high']:.3f}] "
            f"| {r['latency_p50_ms']:.2f} | {r['latency_p95_ms']:.2f} | {energy} | {r['size_kb']:.0f} "
            f"| {r['max_prob_diff']:.2g} |")
    lines += ["", "Each file holds the network(s) and the model card; the ONNX files also hold the preprocessing."]
    return "\n".join(lines) + "\n"


def export_and_compare(checkpoint: Path, train_dir: Path, test_dir: Path, onnx_path: Path, out_dir: Path,
                       int8: bool, calibration_boards: int, threads: int, best_decoder: str, options: DecodeOptions,
                       energy: Mapping[str, float]) -> dict[str, float]:
    """The ``export`` stage body: export, score every variant, log ``<variant>/<metric>`` via dvclive."""
    from chessrec.deploy.artefacts import export_artefacts
    from chessrec.features import load_features
    from chessrec.fileio import write_atomic
    from chessrec.inference.loader import load_model
    from chessrec.inference.onnx_backend import open_onnx_model
    from dvclive import Live

    torch_model = load_model(checkpoint)
    train_crops = check_board_crops(torch_model.crop_specs, crops_by_spec(load_features(train_dir)))
    written = export_artefacts(checkpoint, onnx_path, train_crops, int8=int8, calibration_boards=calibration_boards)
    variants = {"torch": Variant(torch_model, Path(checkpoint)),
                **{name: Variant(open_onnx_model(path, threads=threads), path) for name, path in written.items()}}
    results = score_variants(variants, load_features(test_dir), best_decoder, options, energy, threads)
    flat = {f"{name}/{key}": value for name, r in results.items() for key, value in r.items()}
    if "onnx_int8" in results:
        flat["onnx_int8/square_acc_loss_points"] = 100 * (results["onnx_fp32"]["square_acc"]
                                                          - results["onnx_int8"]["square_acc"])
    with Live(str(out_dir), report=None, save_dvc_exp=False, dvcyaml=False) as live:
        for key, value in flat.items():
            live.log_metric(key, value if np.isfinite(value) else 0.0, plot=False)
    write_atomic(Path(out_dir) / "export.md", comparison_table(results, best_decoder, threads))
    summary = ", ".join(f"{name} {r['square_acc']:.4f} / {r['latency_p50_ms']:.2f} ms" for name, r in results.items())
    print(f"export: {', '.join(str(p) for p in written.values())}; square acc / latency ({threads} thread): {summary}")
    return flat

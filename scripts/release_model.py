"""Ship a pipeline run's model with the package: copy it and write its provenance beside it.

Run in the repository (or a clone) where `dvc repro` of the profile to release finished:

    python scripts/release_model.py [--repo .] [--out src/chessrec/released]

Writes ``classifier.ckpt`` (weights and model card, no optimizer state) and ``classifier.json``:
the commit, profile and params it was trained with, its test metrics with their intervals, its
training time and energy, and its file's SHA-256.

Several ``--repo`` release the ensemble of their models (``chessrec ensemble``): the record keeps
each member's provenance under ``members``, and the test metrics are the ensemble's own, scored by
the ``evaluate`` stage's code on the first repo's test split. No other member may share that run's
seed: each run renders its boards, and picks its splits, from its seed, so a run of another seed
never saw those test boards. ``--keep-released`` adds the model released now (each of its members,
with its record) to the ensemble, so a new run can join the runs released before without their
working trees. ``--float16`` stores the weights in half precision: half the file, widened back to
float32 by the loader; the record's test metrics are then scored on the weights as stored. Git
tracks the file, so one over ``--max-mb`` (2 MB) is refused before it is scored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from chessrec.errors import USER_ERROR_EXIT, UserError

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "chessrec" / "released"
MAX_MB = 2.0  # a release is a file git tracks: it must stay small enough to clone with the code
HEADLINE = ("square_acc", "square_acc_low", "square_acc_high", "board_acc", "board_acc_low", "board_acc_high",
            "errors_per_board", "n_boards")


def provenance(repo: Path, checkpoint: Path) -> dict:
    evaluate = json.loads((repo / "dvclive/evaluate/metrics.json").read_text())
    train = json.loads((repo / "dvclive/train/metrics.json").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True).stdout.strip()
    return {
        "commit": commit + ("-dirty" if dirty else ""),
        "profile": params.get("profile_name"),
        "params": params,
        "test_metrics": {key: evaluate[key] for key in HEADLINE if key in evaluate},
        "decoders": {name: {k: v for k, v in m.items() if k in HEADLINE} for name, m in evaluate["decoders"].items()},
        "training": {"energy": train.get("energy", {}), "epochs": params["train"]["epochs"]},
        "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "size_bytes": checkpoint.stat().st_size,
    }


def test_scores(repo: Path, record: dict, checkpoint: Path) -> dict:
    """``checkpoint``'s test metrics and per-decoder metrics on ``repo``'s test split, scored by the
    ``evaluate`` stage's code with the evaluate params of ``record`` (that run's; a run from before
    ``evaluate.promotion_cost`` is decoded with today's charge)."""
    from chessrec.decoding import PROMOTION_COST
    from chessrec.evaluation import run_evaluation

    evaluate = record["params"].get("evaluate", {})
    missing = [key for key in ("decoders", "best_decoder", "topk", "strict", "mirror_average") if key not in evaluate]
    if missing:
        raise UserError(f"{repo / 'params.yaml'}: evaluate.{missing[0]} missing: the run's params cannot score a model")
    with tempfile.TemporaryDirectory() as scratch:
        flat = run_evaluation(repo / "data/features/test", checkpoint, Path(scratch), evaluate["decoders"],
                              evaluate["best_decoder"], evaluate["topk"], evaluate["strict"],
                              promotion_cost=evaluate.get("promotion_cost", PROMOTION_COST),
                              mirror_average=evaluate["mirror_average"])
    return {
        "test_metrics": {key: flat[key] for key in HEADLINE if key in flat},
        "decoders": {name: {key: flat[f"decoders/{name}/{key}"] for key in HEADLINE if f"decoders/{name}/{key}" in flat}
                     for name in evaluate["decoders"]},
    }


def file_facts(checkpoint: Path) -> dict:
    return {"sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(), "size_bytes": checkpoint.stat().st_size}


def ensemble_record(repos: list[Path], members: list[dict], ensemble: Path) -> dict:
    """The provenance of the ensemble written to ``ensemble``: its members', and its own test metrics."""
    first = members[0]
    profiles = sorted({m["profile"] for m in members})
    scores = test_scores(repos[0], first, ensemble)
    return {
        "commit": first["commit"],
        "profile": "+".join(profiles),
        "ensemble_of": len(members),
        "test_metrics": scores["test_metrics"],
        "test_split": f"{first['profile']} profile, seed {first['params']['seed']} (the first member's run)",
        "decoders": scores["decoders"],
        "members": members,
        **file_facts(ensemble),
    }


def halve_weights(checkpoint: Path) -> None:
    """Rewrite ``checkpoint`` with its floating-point weights in float16: half the file, for an error
    (about 1e-3 relative) far below the networks' own; the loader widens them to float32. A weight
    float16 cannot hold (beyond +-65504) is refused, naming it."""
    import torch

    from chessrec.inference.loader import read_checkpoint

    contents, _ = read_checkpoint(checkpoint)  # a bad file is one line naming it
    halved = {}
    for name, tensor in contents["state_dict"].items():
        halved[name] = tensor.half() if tensor.is_floating_point() else tensor
        if tensor.is_floating_point() and not torch.isfinite(halved[name]).all() and torch.isfinite(tensor).all():
            raise UserError(f"{checkpoint}: weight {name} overflows float16 (largest magnitude "
                            f"{tensor.abs().max().item():.3g}); release it without --float16")
    contents["state_dict"] = halved
    torch.save(contents, checkpoint)


def weights_dtype(checkpoint: Path) -> str:
    """The storage type of a checkpoint's floating-point weights: float16, float32, or mixed (an
    ensemble whose members were stored each their own way)."""
    from chessrec.inference.loader import read_checkpoint

    contents, _ = read_checkpoint(checkpoint)
    dtypes = {str(t.dtype).removeprefix("torch.") for t in contents["state_dict"].values() if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else "mixed"


def kept_members(released: Path, chosen: list[int], scratch: Path) -> list[Path]:
    """The chosen members of the released ensemble, each written to ``scratch`` as its own checkpoint."""
    import torch

    from chessrec.inference.card import CARD_KEY
    from chessrec.inference.ensemble import is_ensemble, member_cards, member_weights
    from chessrec.inference.loader import read_checkpoint

    contents, card = read_checkpoint(released)
    if not is_ensemble(card):
        return [released]  # one run: member 0 is the file itself
    cards, paths = member_cards(card, str(released)), []
    for index in chosen:
        paths.append(scratch / f"member-{index}.ckpt")
        torch.save({"state_dict": member_weights(contents["state_dict"], index), CARD_KEY: cards[index].to_dict()},
                   paths[-1])
    return paths


def fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def released_members(out: Path) -> tuple[Path, list[dict]]:
    """The model released in ``out`` and its members' provenance records (one record if it is one run)."""
    checkpoint, record_file = out / "classifier.ckpt", out / "classifier.json"
    if not checkpoint.is_file() or not record_file.is_file():
        raise UserError(f"{out}: no released model to keep (classifier.ckpt and classifier.json)")
    try:
        record = json.loads(record_file.read_text())
    except ValueError as exc:  # not UTF-8, or not JSON
        raise UserError(f"{record_file}: not a release record ({exc})") from None
    if not isinstance(record, dict) or record.get("sha256") != hashlib.sha256(checkpoint.read_bytes()).hexdigest():
        raise UserError(f"{record_file}: not the record of {checkpoint.name} (its sha256 differs or is missing)")
    members = record.get("members", [record])
    if not all(isinstance(m, dict) and isinstance(m.get("params"), dict) and "seed" in m["params"] for m in members):
        raise UserError(f"{record_file}: a member's record names no params.seed")
    return checkpoint, members


def check_test_split(records: list[dict]) -> None:
    """The first member's test split must be one no other member trained on (one line if not).

    Runs render their boards and choose their splits from their seed, so a run of another seed
    never rendered these test boards; one of the same seed may have trained on them (other data
    params or another renderer draw other splits). Identical checkpoints are refused too: an
    ensemble of a model with itself is that model.
    """
    digests = [record.get("source_sha256", record.get("sha256")) for record in records]
    digests = [digest for digest in digests if digest]
    if len(set(digests)) < len(digests):
        raise UserError("two members are the same checkpoint: an ensemble of a model with itself is that model")
    seed = records[0]["params"]["seed"]
    if any(record["params"]["seed"] == seed for record in records[1:]):
        raise UserError(f"another member shares the test run's seed ({seed}): it may have trained on the boards the "
                        "ensemble would be scored on; put first a run whose seed no other member has")


def check_size(checkpoint: Path, max_mb: float, halved: bool) -> None:
    """Refuse, before the minutes of scoring, a release file larger than git should track."""
    size_mb = checkpoint.stat().st_size / 1e6
    if size_mb > max_mb:
        hint = "fewer members" if halved else "--float16 or fewer members"
        raise UserError(f"the release would be {size_mb:.2f} MB, over --max-mb {max_mb:g}: release {hint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, action="append",
                        help="run whose model to release (default: .); several: release their ensemble")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-released", type=int, nargs="*", metavar="MEMBER",
                        help="the model released in --out joins the ensemble (its members and their records); "
                             "with member numbers (0 first, as in its record), only those members")
    parser.add_argument("--float16", action="store_true",
                        help="store the weights in float16 (half the file); the record is scored on them as stored")
    parser.add_argument("--max-mb", type=float, default=MAX_MB,
                        help=f"refuse a release file over this many MB (10^6 bytes; default {MAX_MB}), "
                             "before it is scored: git tracks it")
    args = parser.parse_args(argv)
    repos = args.repo or [Path(".")]
    try:
        if not args.max_mb > 0:
            raise UserError(f"--max-mb {args.max_mb}: must be a positive size in MB")
        checkpoints = [repo / "models/classifier.ckpt" for repo in repos]
        for checkpoint in checkpoints:
            if not checkpoint.is_file():
                raise UserError(f"{checkpoint}: no model (run `dvc repro` there first)")
        records = [provenance(repo, checkpoint) for repo, checkpoint in zip(repos, checkpoints)]
        kept: list[dict] = []
        if args.keep_released is not None:
            released, kept = released_members(args.out)
            chosen = args.keep_released or range(len(kept))
            if any(not 0 <= index < len(kept) for index in chosen) or len(set(chosen)) < len(chosen):
                raise UserError(f"--keep-released {' '.join(map(str, args.keep_released))}: the released model has "
                                f"members 0-{len(kept) - 1}, each to be named once")
            kept = [kept[index] for index in chosen]
        check_test_split(records + kept)
    except (UserError, OSError, KeyError) as exc:
        print(f"release_model: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    args.out.mkdir(parents=True, exist_ok=True)
    # the release changes only when it is complete; a hidden folder, should a kill leave it behind
    with tempfile.TemporaryDirectory(dir=args.out, prefix=".release-") as scratch:
        staged, staged_record = Path(scratch) / "classifier.ckpt", Path(scratch) / "classifier.json"
        try:
            if args.keep_released is not None:
                checkpoints += (kept_members(released, chosen, Path(scratch)) if args.keep_released else [released])
            if len(checkpoints) == 1:
                shutil.copyfile(checkpoints[0], staged)
            else:
                from chessrec.inference.ensemble import combine_files

                card = combine_files(checkpoints, staged)  # a kept ensemble contributes each of its members
                if len(card.architecture["members"]) != len(records + kept):
                    raise UserError(f"{len(card.architecture['members'])} members in the ensemble but "
                                    f"{len(records + kept)} records: the kept release's record does not describe it")
            if args.float16:
                halve_weights(staged)
            check_size(staged, args.max_mb, args.float16)
            if len(checkpoints) > 1:
                record = ensemble_record(repos, records + kept, staged)
            elif args.float16:  # the run's own evaluate scored other weights than the stored ones
                record = {**records[0], **test_scores(repos[0], records[0], staged), **file_facts(staged),
                          "source_sha256": records[0]["sha256"]}
            else:
                record = records[0]
            record["weights"] = weights_dtype(staged)
            staged_record.write_text(json.dumps(record, indent=2) + "\n")
            for path in (staged, staged_record):
                fsync(path)
            staged.replace(args.out / "classifier.ckpt")  # two renames back to back; a record left describing
            staged_record.replace(args.out / "classifier.json")  # another file is refused by --keep-released
        except (UserError, OSError, KeyError) as exc:
            print(f"release_model: error: {exc}", file=sys.stderr)
            return USER_ERROR_EXIT
    m = record["test_metrics"]
    print(f"released {record['profile']} model of {record['commit'][:12]}: square acc {m['square_acc']:.4f}, "
          f"board acc {m['board_acc']:.3f} ({record['size_bytes'] / 1e6:.1f} MB) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

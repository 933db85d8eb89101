"""``chessrec export``: a trained checkpoint to ONNX (verified in ONNX Runtime), optionally int8 too."""

from __future__ import annotations

import argparse
from pathlib import Path

from chessrec.errors import UserError

DEFAULT_CROPS = Path("data/features/train")


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained model to ONNX (and int8) for ONNX Runtime",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", default=Path("models/classifier.ckpt"),
                        help="checkpoint to export (default: models/classifier.ckpt)")
    parser.add_argument("--out", type=Path, help="ONNX file to write (default: the checkpoint's name, .onnx)")
    parser.add_argument("--int8", action="store_true",
                        help="also write <out>.int8.onnx, statically quantised (calibrated on --crops)")
    parser.add_argument("--crops", type=Path,
                        help=f"featurize output of the training split: verifies the export, calibrates int8 "
                             f"(default: {DEFAULT_CROPS} when present)")
    parser.add_argument("--calibration-boards", type=int, default=32, help="boards that calibrate int8 (default: 32)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chessrec.deploy.artefacts import export_artefacts
    from chessrec.features import crops_by_spec, load_features
    from chessrec.inference.loader import load_model

    if args.calibration_boards < 1:
        raise UserError(f"--calibration-boards must be >= 1, got {args.calibration_boards}")
    crops_dir = args.crops or (DEFAULT_CROPS if DEFAULT_CROPS.is_dir() else None)
    crops = None
    if crops_dir is not None:
        crops = crops_by_spec(load_features(crops_dir))
        missing = set(load_model(args.model).crop_specs) - set(crops)
        if missing:
            raise UserError(f"{crops_dir}: holds crops {sorted(crops)}, the model also reads {sorted(missing)}")
    out = args.out or args.model.with_suffix(".onnx")
    written = export_artefacts(args.model, out, crops, int8=args.int8, calibration_boards=args.calibration_boards)
    source = f"{crops_dir}" if crops_dir is not None else "random crops"
    for name, path in written.items():
        print(f"{name}: {path} ({path.stat().st_size / 1024:.0f} kB)")
    print(f"verified against the checkpoint in ONNX Runtime on {source}")
    return 0

"""From a trained checkpoint to the files that ship: ONNX fp32 and, optionally, int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chessrec.errors import UserError
from chessrec.inference.loader import load_model
from chessrec.inference.model import BoardCrops, check_board_crops

#: random boards a parity check uses when no real crops are at hand
RANDOM_VERIFY_BOARDS = 4


def int8_path(fp32_path: Path) -> Path:
    """``models/classifier.onnx`` -> ``models/classifier.int8.onnx``."""
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def export_artefacts(checkpoint: Path, out: Path, crops: BoardCrops | None = None, int8: bool = False,
                     calibration_boards: int = 32) -> dict[str, Path]:
    """Export ``checkpoint`` to ``out`` (ONNX fp32, parity-checked) and, with ``int8``, its int8 twin.

    ``crops`` are (N, 64, 3, H, W) uint8 board crops per spec name from the *training* split:
    they verify the export and calibrate int8.  Without them the export is verified on random
    crops, and int8 (which needs real activations) is refused.
    """
    from chessrec.deploy.onnx_export import export_onnx
    from chessrec.deploy.quantize import quantize_int8

    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"{out}: the exported model's file name must end in .onnx")
    if Path(checkpoint).suffix != ".ckpt":
        raise UserError(f"{checkpoint}: only a torch checkpoint (.ckpt) can be exported")
    model = load_model(checkpoint)
    if crops is None:
        if int8:
            raise UserError("int8 needs training crops to calibrate on: pass --crops data/features/train")
        rng = np.random.default_rng(0)
        crops = {name: rng.integers(0, 256, (RANDOM_VERIFY_BOARDS, 64, 3, *spec.output_shape), dtype=np.uint8)
                 for name, spec in model.crop_specs.items()}
    crops = check_board_crops(model.crop_specs, crops)
    if len(next(iter(crops.values()))) == 0:
        raise UserError("no boards to verify the export on")
    export_onnx(model, out, {name: c[:RANDOM_VERIFY_BOARDS] for name, c in crops.items()})
    written = {"onnx_fp32": out}
    if int8:
        written["onnx_int8"] = quantize_int8(out, int8_path(out), {name: c[:calibration_boards]
                                                                   for name, c in crops.items()})
    return written

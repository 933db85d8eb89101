"""From a trained checkpoint to the files that ship: ONNX fp32 and, optionally, int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chessrec.errors import UserError
from chessrec.inference.loader import load_model
from chessrec.inference.torch_backend import TorchSquareModel

#: random boards a parity check uses when no real crops are at hand
RANDOM_VERIFY_BOARDS = 4


def int8_path(fp32_path: Path) -> Path:
    """``models/classifier.onnx`` -> ``models/classifier.int8.onnx``."""
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def export_artefacts(checkpoint: Path, out: Path, crops: np.ndarray | None = None, int8: bool = False,
                     calibration_boards: int = 32) -> dict[str, Path]:
    """Export ``checkpoint`` to ``out`` (ONNX fp32, parity-checked) and, with ``int8``, its int8 twin.

    ``crops`` are (N, 64, 3, H, W) uint8 board crops of the model's spec from the *training* split:
    they verify the export and calibrate int8.  Without them the export is verified on random
    crops, and int8 (which needs real activations) is refused.
    """
    from chessrec.deploy.onnx_export import export_onnx
    from chessrec.deploy.quantize import quantize_int8

    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"{out}: the exported model's file name must end in .onnx")
    model = load_model(checkpoint)
    if not isinstance(model, TorchSquareModel):
        raise UserError(f"{checkpoint}: only a torch checkpoint (.ckpt) can be exported")
    shape = (64, 3, *model.crop_spec.output_shape)
    if crops is None:
        if int8:
            raise UserError("int8 needs training crops to calibrate on: pass --crops data/features/train")
        crops = np.random.default_rng(0).integers(0, 256, (RANDOM_VERIFY_BOARDS, *shape), dtype=np.uint8)
    elif crops.shape[1:] != shape or crops.dtype != np.uint8 or len(crops) == 0:
        raise UserError(f"crops are {crops.shape} {crops.dtype}, the model reads (N, {', '.join(map(str, shape))}) uint8")
    export_onnx(model, out, crops[:RANDOM_VERIFY_BOARDS])
    written = {"onnx_fp32": out}
    if int8:
        written["onnx_int8"] = quantize_int8(out, int8_path(out), crops[:calibration_boards])
    return written

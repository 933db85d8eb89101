"""Static int8 quantisation of an exported classifier with ONNX Runtime's own tools.

Static (not dynamic) quantisation: convolutions dominate these networks, and only static
quantisation turns them into integer kernels; the activation ranges come from a calibration
pass over training crops (never test crops).  QDQ format, per-channel int8 weights, uint8
activations: what ONNX Runtime's CPU kernels run fastest and what edge runtimes import.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from chessrec.errors import UserError
from chessrec.fileio import write_atomic
from chessrec.inference.model import BoardCrops
from chessrec.inference.onnx_backend import CROPS_INPUT, SQUARES_INPUT


class _CalibrationCrops:
    """onnxruntime.quantization.CalibrationDataReader: one board per batch, every square of it, for each
    network in the file (``prefixes``: its crop spec and input-name prefix, see
    :func:`chessrec.inference.onnx_backend.network_prefixes`)."""

    def __init__(self, crops: BoardCrops, prefixes: list[tuple[str, str]]):
        n = len(next(iter(crops.values())))
        self._feeds = iter([{name: value for spec, prefix in prefixes for name, value in (
            (prefix + CROPS_INPUT, np.ascontiguousarray(crops[spec][i])),
            (prefix + SQUARES_INPUT, np.arange(64, dtype=np.int64)))} for i in range(n)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_int8(fp32_path: Path, out_path: Path, calibration_crops: BoardCrops) -> Path:
    """Write the int8 version of the ONNX model at ``fp32_path`` to ``out_path`` (its card kept).

    ``calibration_crops``: (N, 64, 3, H, W) uint8 training-board crops per spec name.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from chessrec.deploy.onnx_export import set_card
    from chessrec.inference.onnx_backend import network_prefixes, open_session, read_card

    if len(next(iter(calibration_crops.values()))) == 0:
        raise UserError("int8 calibration needs at least one training board")
    card = read_card(open_session(Path(fp32_path), threads=1), Path(fp32_path))
    prefixes = network_prefixes(card, str(fp32_path))
    with tempfile.TemporaryDirectory(prefix="chessrec-int8-") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), _CalibrationCrops(calibration_crops, prefixes),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(quantized))
    set_card(proto, card)
    write_atomic(out_path, proto.SerializeToString())
    return Path(out_path)

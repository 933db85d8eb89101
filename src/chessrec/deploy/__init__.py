"""Edge deployment: export the trained classifier to ONNX, quantise it to int8, score what ships.

Submodules are imported directly (``chessrec.deploy.onnx_export``, ``chessrec.deploy.quantize``):
this package's ``__init__`` imports nothing, so inference with an exported model never pays for
torch or the quantisation tools.
"""

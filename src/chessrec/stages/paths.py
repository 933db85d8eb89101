"""Where each stage reads and writes: the same paths dvc.yaml declares."""

from pathlib import Path

RAW = Path("data/raw")
FEATURES = Path("data/features")
MODEL = Path("models/classifier.ckpt")
ONNX_MODEL = Path("models/classifier.onnx")  # and models/classifier.int8.onnx beside it
TRAIN_LIVE = Path("dvclive/train")
EVAL_LIVE = Path("dvclive/evaluate")
PLOTS = Path("plots")
EXPORT_LIVE = Path("dvclive/export")
BROADCAST_LIVE = Path("dvclive/broadcast")
ADAPT_SET = Path("data/adapt_set")  # the rendered set (or nothing, when the team's own photos are used)
ADAPTED_MODEL = Path("models/adapted.ckpt")
ADAPT_LIVE = Path("dvclive/adapt")

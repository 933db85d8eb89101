"""Where each stage reads and writes: the same paths dvc.yaml declares."""

from pathlib import Path

RAW = Path("data/raw")
FEATURES = Path("data/features")
MODEL = Path("models/classifier.ckpt")
TRAIN_LIVE = Path("dvclive/train")
EVAL_LIVE = Path("dvclive/evaluate")
PLOTS = Path("plots")

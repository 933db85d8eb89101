"""Library noise a user can do nothing about, silenced by name; every other warning still shows."""

from __future__ import annotations

import logging
import warnings

#: (message regex, why it is noise)
IGNORED_WARNINGS = (
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning and the ONNX exporter trip a torch deprecation"),
    (r".*The axis name: .* will not be used", "the ONNX exporter names one batch axis shared by two inputs"),
)
#: Lightning's advertisement of a cloud logger, printed on every run
_ADVERTISEMENT = "litlogger"


class _DropAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _ADVERTISEMENT not in record.getMessage()


def quiet_library_noise() -> None:
    """Install the filters (idempotent)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logger = logging.getLogger(name)
        for owner in (logger, *logger.handlers):
            if not any(isinstance(f, _DropAdvertisement) for f in owner.filters):
                owner.addFilter(_DropAdvertisement())
    for pattern, _why in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

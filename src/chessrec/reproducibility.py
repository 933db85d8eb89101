"""What decides the bytes a deterministic stage writes, recorded beside its outputs.

The renders and crops are byte-identical run after run on one machine, but not across instruction
sets: numpy and OpenCV take other SIMD paths with AVX-512 than with AVX2 and round differently
(measured 2026-12-04: the same commit's renders differ in bytes between an AVX2 and an AVX-512
machine, and are identical on one).  ``prepare`` and ``featurize`` each write this record with
their outputs, so the reproduction check (``scripts/check_reproduction.py``) can demand identical
bytes exactly when it runs where the committed ones were made, and only note a difference
elsewhere.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

#: where the deterministic stages write the record of the machine that made their outputs
RECORDS = Path("reproduction")


def instruction_set() -> dict:
    """The facts that decide how this machine rounds numpy's and OpenCV's vectorised work.

    numpy reports the SIMD targets it found on this CPU (``X86_V3`` is AVX2, ``X86_V4`` AVX-512);
    OpenCV dispatches on the same CPU features, so its own list adds nothing.  The CPU vendor is
    kept too: approximate instructions (reciprocals, square roots) may round otherwise on another
    vendor's cores with the same feature list.  So are the CPU's family and model, by which
    libraries such as OpenBLAS pick their kernels (2026-12-05: on an AMD EPYC of family 26 the
    same commit's render annotations differed from the committed ones, made on AMD cores with the
    same feature list, in the last digits of some floats; the images and crops were identical).
    The library versions are pinned by ``requirements.lock`` and recorded for a reader who checks.
    """
    import cv2
    import numpy as np

    simd = np.show_config(mode="dicts").get("SIMD Extensions") or {}
    found, baseline = simd.get("found"), simd.get("baseline")
    if found is None or baseline is None:  # a numpy that does not report them: ask its dispatcher directly
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_features__

        found = [name for name, present in __cpu_features__.items() if present]
        baseline = list(__cpu_baseline__)
    return {
        "machine": platform.machine(),
        "cpu_vendor": _cpu_vendor(),
        "cpu_family_model": _cpuinfo("cpu family") + "/" + _cpuinfo("model"),
        "numpy_simd_baseline": sorted(baseline),
        "numpy_simd_found": sorted(found),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def _cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ... (Linux), else what the platform module says."""
    return _cpuinfo("vendor_id") or platform.processor() or "unknown"


def _cpuinfo(field: str) -> str:
    """The first core's ``field`` in /proc/cpuinfo (Linux), else ``""``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def record_path(stage: str) -> Path:
    return RECORDS / f"{stage}.json"


def read_record(text: str | None) -> dict | None:
    """A record's contents, or None for no record or one that is not a JSON object (it vouches for nothing)."""
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def write_record(stage: str) -> Path:
    """Write this machine's :func:`instruction_set` as ``stage``'s record (stable bytes: sorted keys)."""
    from chessrec.fileio import write_atomic

    path = record_path(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(instruction_set(), indent=2, sort_keys=True) + "\n")


def same_instruction_set(committed: dict | None, current: dict) -> bool:
    """Whether outputs made under ``committed`` must reproduce byte for byte under ``current``.

    No record (outputs committed before records existed) cannot vouch for anything: False.
    """
    return committed is not None and committed == current

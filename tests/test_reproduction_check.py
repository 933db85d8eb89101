"""The CI reproduction check compares quality metrics, never machine figures, and demands identical bytes of
the deterministic stages where the committed ones were made (scripts/check_reproduction.py)."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_reproduction  # noqa: E402
from check_reproduction import byte_verdicts, committed_record, compare_metrics, reproduced_record  # noqa: E402

DIFF = {  # the shape of DVC 3's `dvc metrics diff --all --json`
    "dvclive/evaluate/metrics.json": {
        "board_acc": {"old": 0.14, "new": 0.14, "diff": 0.0},
        "decoders.argmax.square_acc": {"old": 0.93, "new": 0.935, "diff": 0.005},
        "decoders.continuity.board_acc": {"old": 0.78, "new": 0.67, "diff": -0.11},
        "latency.model_p50_ms": {"old": 13.0, "new": 40.0, "diff": 27.0},
        "energy.methods": {"old": "cpu=cpu-time-estimate", "new": "cpu=rapl"},
    },
    "dvclive/train/metrics.json": {"energy.fit_j": {"old": 6000.0, "new": 9000.0, "diff": 3000.0}},
}


def test_quality_metrics_within_tolerance_pass_and_machine_figures_are_not_compared():
    problems, compared = compare_metrics(DIFF, tolerance=0.15)
    assert problems == [] and compared == 3


def test_a_quality_metric_beyond_tolerance_is_reported_with_file_and_name():
    problems, _ = compare_metrics(DIFF, tolerance=0.05)
    assert problems == ["dvclive/evaluate/metrics.json: decoders.continuity.board_acc = 0.6700, committed 0.7800 "
                        "(tolerance 0.05)"]
    moved = {"m.json": {"square_acc": {"old": 0.97, "new": 0.95}, "errors_per_board": {"old": 1.8, "new": 2.3}}}
    problems, _ = compare_metrics(moved, tolerance=0.15)
    assert problems == ["m.json: square_acc = 0.9500, committed 0.9700 (tolerance 0.01)",
                        "m.json: errors_per_board = 2.3000, committed 1.8000 (tolerance 0.4)"]


AVX2 = {"machine": "x86_64", "cpu_vendor": "AuthenticAMD", "numpy_simd_baseline": ["X86_V2"], "numpy_simd_found": ["X86_V3"], "numpy": "2.4.6",
        "opencv": "5.0.0"}
AVX512 = {**AVX2, "numpy_simd_found": ["AVX512_ICL", "X86_V3", "X86_V4"]}


def _lock(raw_md5: str) -> dict:
    return {"stages": {"prepare": {"outs": [{"path": "data/raw", "md5": raw_md5}]},
                       "featurize": {"outs": [{"path": "data/features", "md5": "f"}]}}}


def _verdicts(monkeypatch, committed_on, here, strict=False):
    monkeypatch.setattr(check_reproduction, "committed_record", lambda stage: committed_on)
    monkeypatch.setattr(check_reproduction, "reproduced_record", lambda stage: here)
    return byte_verdicts(_lock("a"), _lock("b"), strict)


def test_other_bytes_fail_on_the_instruction_set_that_made_the_committed_outputs(monkeypatch):
    failures, notes = _verdicts(monkeypatch, committed_on=AVX2, here=dict(AVX2))
    assert notes == [] and len(failures) == 1
    assert failures[0].startswith("prepare: output data/raw hash b != committed a") and "X86_V3" in failures[0]


def test_other_bytes_are_noted_naming_both_machines_on_another_instruction_set_or_with_no_record(monkeypatch):
    failures, notes = _verdicts(monkeypatch, committed_on=AVX2, here=AVX512)
    assert failures == [] and len(notes) == 1
    assert "committed on AuthenticAMD x86_64 with X86_V3, reproduced on AuthenticAMD x86_64 with AVX512_ICL+X86_V3+X86_V4" in notes[0]
    assert "they differ in numpy_simd_found ['X86_V3'] -> ['AVX512_ICL', 'X86_V3', 'X86_V4']" in notes[0]
    failures, notes = _verdicts(monkeypatch, committed_on=None, here=AVX512)
    assert failures == [] and "committed on an unrecorded machine" in notes[0]


def test_a_note_names_the_cpu_model_when_the_simd_lists_read_the_same(monkeypatch):
    """Two CPU families with the same SIMD list (Zen 4 and Zen 5) made renders that differ in bytes."""
    zen5, zen4 = {**AVX512, "cpu_family_model": "26/2"}, {**AVX512, "cpu_family_model": "25/17"}
    failures, notes = _verdicts(monkeypatch, committed_on=zen5, here=zen4)
    assert failures == [] and len(notes) == 1
    assert "they differ in cpu_family_model 26/2 -> 25/17: another machine rounds otherwise" in notes[0]


def test_strict_bytes_fail_anywhere_and_identical_bytes_pass_everywhere(monkeypatch):
    failures, _ = _verdicts(monkeypatch, committed_on=AVX2, here=AVX512, strict=True)
    assert len(failures) == 1
    monkeypatch.setattr(check_reproduction, "committed_record", lambda stage: AVX2)
    assert byte_verdicts(_lock("a"), _lock("a"), strict=True) == ([], [])


def test_records_are_read_from_the_commit_and_from_the_rerun_and_a_broken_one_vouches_for_nothing(tmp_path, monkeypatch):
    import json
    import subprocess

    from chessrec.reproducibility import instruction_set, write_record

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    assert committed_record("prepare") is None  # no commit, no record: outputs from before records existed
    path = write_record("prepare")
    (tmp_path / "reproduction" / "featurize.json").write_text("{not json")
    subprocess.run(["git", "add", "."], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "records"], check=True)
    assert committed_record("prepare") == instruction_set() == json.loads(path.read_text())
    assert committed_record("featurize") is None
    path.write_text(json.dumps({**AVX2, "numpy_simd_found": ["X86_V3", "SOMETHING_ELSE"]}))
    assert reproduced_record("prepare")["numpy_simd_found"] == ["X86_V3", "SOMETHING_ELSE"]  # what the stage wrote
    assert reproduced_record("featurize") == instruction_set()  # a broken record: this interpreter's own

"""Distributed runs: each rank measures its own devices and the totals cover every rank."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_energy_meter import write_powercap

TESTS = Path(__file__).resolve().parent

GATHER_SCRIPT = """
import json, os, sys, time
from pathlib import Path
import torch.distributed as dist
import torch.multiprocessing as mp

def run(rank, out, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from chessrec.energy import EnergyMeter
    from chessrec.energy.distributed import gather
    from chessrec.energy.simulated import SimulatedGpu, SimulatedNVML
    nvml = SimulatedNVML([SimulatedGpu.constant(100.0), SimulatedGpu.constant(50.0)])
    powercap = Path(out, "powercap")
    with EnergyMeter(gpu_indices=[rank], sample_interval_s=0.02, nvml=nvml, powercap_root=powercap) as meter:
        meter.begin_window("fit")
        time.sleep(0.3)
        local = meter.end_window("fit")
    total = gather(local, local_rank=rank)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"local": local.summary(), "total": total.summary()}))
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(run, args=(sys.argv[1], sys.argv[2]), nprocs=2)
"""

LIGHTNING_SCRIPT = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_energy_callback import tiny_fit
from chessrec.energy import EnergyMeter

out = Path(sys.argv[1])
with EnergyMeter(powercap_root=out / "no-rapl") as meter:
    callback = tiny_fit(out, meter, devices=2, strategy="ddp")
(out / f"rank{os.environ.get('LOCAL_RANK', '0')}.json").write_text(json.dumps(callback.fit.summary()))
"""


def _run(script: str, out: Path, *args: str, timeout: int) -> None:
    """Run ``script`` from a file (DDP launchers re-execute it) with ``out`` as first argument."""
    path = out / "script.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path), str(out), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.mark.slow  # two processes each importing torch: over 10 s on two cores
def test_gather_sums_each_ranks_gpu_and_counts_shared_rapl_once(tmp_path):
    write_powercap(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 1000, 10**9)})
    _run(GATHER_SCRIPT, tmp_path, _free_port(), timeout=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    total = ranks[0]["total"]
    assert ranks[1]["total"] == total  # every rank holds the same totals
    assert total["methods"] == {"rank0/gpu:0": "nvml-counter", "rank0/cpu": "rapl", "rank1/gpu:1": "nvml-counter"}
    assert ranks[0]["local"]["mean_power_w"]["gpu:0"] == pytest.approx(100.0, rel=0.05)
    assert ranks[1]["local"]["mean_power_w"]["gpu:1"] == pytest.approx(50.0, rel=0.05)
    local_sum = ranks[0]["local"]["total_energy_j"] + ranks[1]["local"]["energy_j"]["gpu:1"]
    assert total["total_energy_j"] == pytest.approx(local_sum)


@pytest.mark.slow
def test_lightning_ddp_on_two_cpu_processes_logs_totals_of_both_ranks(tmp_path):
    _run(LIGHTNING_SCRIPT, tmp_path, str(TESTS), timeout=240)
    fits = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert fits[0] == fits[1]
    assert fits[0]["methods"] == {"rank0/cpu": "cpu-time-estimate", "rank1/cpu": "cpu-time-estimate"}
    energy = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())["energy"]
    assert energy["fit_j"] == pytest.approx(fits[0]["total_energy_j"])
    assert energy["measured"] == 0 and energy["epoch_j"] > 0

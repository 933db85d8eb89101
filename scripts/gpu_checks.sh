#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (about 10 minutes on a datacentre GPU with 16 cores):
#   1. scripts/gpu_energy_check.py: NVML's energy counter against the sampled power, and the sampler's cost;
#   2. the `full` profile on the GPU, the stages a team reruns for a new model (prepare, featurize, train,
#      evaluate), each timed, with params composed as `dvc exp run -S profile=full -S trainer.accelerator=gpu`
#      composes them (the stages are run one by one here, so the run needs no git and no DVC cache).
# Every figure goes to OUT_DIR: the GPU, the machine-speed reference before and after, each stage's time,
# the train and evaluate metrics, the training energy, and the trained checkpoint. Like `dvc repro`, it
# writes the stages' outputs (data/, models/, dvclive/) in this working tree: run it in a clone.
#
#     bash scripts/gpu_checks.sh OUT_DIR [extra overrides, e.g. data.workers=16]
#     PROFILE=tiny ACCELERATOR=cpu bash scripts/gpu_checks.sh OUT_DIR   # a dry run of part 2 without a GPU
#     ENERGY_CHECK=0 bash scripts/gpu_checks.sh OUT_DIR                   # part 2 only
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_checks.sh OUT_DIR [overrides]}
shift
mkdir -p "$out"
log="$out/gpu_checks.log"
exec > >(tee -a "$log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

reference() { python -c "from chessrec.machine_speed import reference_ms; print(f'machine-speed reference ($1): {reference_ms():.1f} ms')"; }
stamp() { date +%s.%N; }

nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv
nproc
reference before

if [ "${ENERGY_CHECK:-1}" != 0 ]; then
  echo "== 1. gpu_energy_check"
  python scripts/gpu_energy_check.py --out "$out/gpu_energy_check.json" || echo "gpu_energy_check failed: $?"
fi

echo "== 2. the full profile on the GPU"
params=$(mktemp -d)/params.yaml
python scripts/compose_params.py --out "$params" "profile=${PROFILE:-full}" "trainer.accelerator=${ACCELERATOR:-gpu}" "$@" \
  || exit 2
cp "$params" "$out/params.yaml"
keep() {  # each stage's figures as soon as they exist, so a run cut short still reports what it finished
  case $1 in
    train) cp dvclive/train/metrics.json "$out/train_metrics.json"; cp dvclive/train/energy.json "$out/train_energy.json"
           cp models/classifier.ckpt "$out/classifier.ckpt" ;;
    evaluate) cp dvclive/evaluate/metrics.json "$out/evaluate_metrics.json" ;;
  esac
}
for stage in prepare featurize train evaluate; do
  t0=$(stamp)
  python -m chessrec.cli stage "$stage" --params "$params" || { echo "stage $stage failed"; break; }
  echo "stage $stage: $(python -c "print(f'{$(stamp) - $t0:.1f}')") s"
  keep "$stage"
done
reference after

#!/usr/bin/env bash
# The prepared GPU check: one run, under 10 minutes on one GPU, on a bare CUDA machine after
# `make install` (it uses .venv/bin/python; PYTHON=... overrides). Nothing is downloaded.
#
#   benchmarks/gpu_check.sh OUTDIR              # on the GPU
#   benchmarks/gpu_check.sh OUTDIR --cpu-smoke  # the same steps, tiny, on CPU (what CI runs)
#
# 1. CUDA step benchmark (benchmarks/method_step.py): ViT-B/16, 224², batch 64, bf16 autocast;
#    GenFT against LoRA and the frozen backbone (and the slow references), -> OUTDIR/method_step.txt
# 2. a VTAB-format GenFT study of 8 trials at gpu: 0.25 (four at once on one GPU) on synthetic
#    images with a random-init checkpoint (benchmarks/gpu_study.py), peak memory per trial,
#    -> OUTDIR/gpu_study.{txt,json,yaml,db}; nvidia-smi samples -> OUTDIR/nvidia_smi.csv
# Each step has its own time limit and the second runs even if the first failed; OUTDIR/status.txt
# has both exit codes, and the script exits non-zero if either failed.
set -uo pipefail

OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR [--cpu-smoke]}
MODE=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} HF_HUB_OFFLINE=1 GENFT_RUNS_DIR="$OUT/ray_runs"

if [ "$MODE" = "--cpu-smoke" ]; then
    STEP_ARGS=(--model vit_tiny_patch16_224:8 --img-size 32 --steps 1 --warmup 0 --threads 1 --amp)
    STUDY_ARGS=(--cpu-smoke)
    STEP_LIMIT=300 STUDY_LIMIT=400
elif [ -z "$MODE" ]; then
    STEP_ARGS=(--model vit_base_patch16_224:64 --steps 20 --warmup 3 --threads 4 --device cuda --amp
               --max-seconds 150)
    STUDY_ARGS=()
    STEP_LIMIT=200 STUDY_LIMIT=330
else
    echo "gpu_check.sh: unknown option $MODE; expected --cpu-smoke or nothing" >&2
    exit 2
fi

{
    date -u
    "$PY" -c "import torch, ray, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'ray',
ray.__version__, 'timm', timm.__version__); print('gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
        || true
    command -v nvidia-smi >/dev/null && nvidia-smi
} > "$OUT/env.txt" 2>&1

SAMPLER=
if [ -z "$MODE" ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -lms 1000 \
        > "$OUT/nvidia_smi.csv" 2>/dev/null &
    SAMPLER=$!
fi
trap '[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null' EXIT

echo "== step benchmark" >&2
timeout "$STEP_LIMIT" "$PY" benchmarks/method_step.py "${STEP_ARGS[@]}" > "$OUT/method_step.txt" \
    2> "$OUT/method_step.err"
STEP_RC=$?
tail -n 12 "$OUT/method_step.txt" >&2

echo "== study: 8 trials at gpu 0.25" >&2
timeout "$STUDY_LIMIT" "$PY" benchmarks/gpu_study.py --out "$OUT" ${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"} > "$OUT/gpu_study.txt" \
    2> "$OUT/gpu_study.err"
STUDY_RC=$?
tail -n 12 "$OUT/gpu_study.txt" >&2

printf 'method_step %s\ngpu_study %s\n' "$STEP_RC" "$STUDY_RC" | tee "$OUT/status.txt" >&2
[ "$STEP_RC" = 0 ] && [ "$STUDY_RC" = 0 ]

#!/usr/bin/env bash
# One GPU slice for issue 9: three context-student variants trained side by side on one GPU at
# equal steps and batch (recipe context_v2_gpu), then everything small tarred into $OUT.
#   A: the v1 model (classical=false)   B: + MED/GAP inputs   C: B with a 4-row, 9-wide window
# Needs (ignored, carried): gpu/photos (lossless WebP crops of ../shared/data/photos, same names,
# so the same 4 validation images) and gpu/whl (omegaconf wheel; the GPU image lacks it).
# Usage on the GPU machine:  OUT=/some/dir STEPS=6000 MINUTES=7.5 bash scripts/gpu_context_ab.sh
set -euo pipefail
OUT=${OUT:?set OUT}; STEPS=${STEPS:-6000}; MINUTES=${MINUTES:-7.5}
pip install -q --no-index --no-deps --target /tmp/pydeps gpu/whl/*.whl
export PYTHONPATH=/tmp/pydeps:$PWD PIXLM_DATA=$PWD/gpu HF_HUB_OFFLINE=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
RUNS=/tmp/runs; mkdir -p $RUNS
common="recipe=context_v2_gpu max_steps=$STEPS slice_minutes=$MINUTES ${EXTRA:-}"  # EXTRA=resume=true: next slice
python train_context.py $common output_dir=$RUNS/A model.classical=false > $RUNS/A.log 2>&1 &
python train_context.py $common output_dir=$RUNS/B > $RUNS/B.log 2>&1 &
python train_context.py $common output_dir=$RUNS/C model.rows_above=4 model.cols_side=4 model.cols_left=4 > $RUNS/C.log 2>&1 &
wait || true
tail -n 4 $RUNS/*.log
# Small things only: finals, each run's newest state weights (if a slice stopped early), tensorboard, logs.
python - "$RUNS" "$OUT/runs.tar.gz" <<'PY'
import sys, tarfile
from pathlib import Path
runs = Path(sys.argv[1])
with tarfile.open(sys.argv[2], "w:gz") as tar:
    for path in sorted(runs.rglob("*")):
        keep = path.suffix == ".log" or "final" in path.parts or "tensorboard" in path.parts or \
            path.name in ("model.safetensors", "trainer_state.json")
        if path.is_file() and keep:
            tar.add(path, arcname=str(path.relative_to(runs)))
PY
ls -la "$OUT"

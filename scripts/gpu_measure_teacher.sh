#!/usr/bin/env bash
# Measure an already trained LM teacher on a lent GPU machine, without training it again (issue 11),
# and decode on that machine's CPU the integer streams encoded here (issue 10: another CPU kind and
# torch build). Everything small lands in $OUT (at most 8 files of < 16 MiB).
#
# Staged in $S by earlier calls on the same warm machine (the carry limit is 64 MiB a call):
#   $S/whl2/*.whl                 gguf, constriction, omegaconf, transformers, peft wheels
#   $S/smollm2.xz.*               python scripts/slim_gguf.py (the base model, parts of < 40 MiB)
#   $S/final/                     the teacher as it came back: adapter/, pixel head, tokenizer, recipe
#   $S/v4streams/*.pxl            pixlm encode IMAGES/ STREAMS/ --no-fallback (here: kodim01-06, v4)
# and in the working tree: gpu/kodak/ (the 24 Kodak PNGs, evaluation only).
# Usage there:  OUT=/some/dir S=/tmp/stage bash scripts/gpu_measure_teacher.sh   (~5 min on one H100)
set -uo pipefail
OUT=${OUT:?set OUT}; S=${S:-/tmp/stage}; KODAK=${KODAK:-gpu/kodak}; DEVICE=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
if [ -d $S/whl2 ] && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $S/whl2/*.whl || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee $OUT/machine.txt
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200 | tee -a $OUT/machine.txt
BASE=${BASE:-/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -f $BASE ]; then
  mkdir -p $(dirname $BASE)
  cat $S/smollm2.xz.* | python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), open(sys.argv[1], 'wb'))" $BASE || exit 1
fi
# Issue 10 on this machine's CPU, beside the GPU work (3 decodes at a time, 4 threads each).
python3 benchmarks/studies/cross_machine.py --streams $S/v4streams tests/expected --images $KODAK tests/expected \
  --threads 4 --jobs 3 --out $OUT/cross_machine.json > $OUT/cross_machine.log 2>&1 &
cross=$!
python3 benchmarks/studies/llm_teacher.py --teacher $S/final --base $BASE --kodak $KODAK --out /tmp/teacher-eval \
  --report $OUT/teacher.json --device $DEVICE --batch ${BATCH:-128} ${EVAL_ARGS:---crops 1 --crop 768x16 --kodak-seconds 240} 2>&1 | tee $OUT/eval.log
cp /tmp/teacher-eval/*-crop.pxl $OUT/ 2>/dev/null
wait $cross
tail -3 $OUT/cross_machine.log
ls -la $OUT

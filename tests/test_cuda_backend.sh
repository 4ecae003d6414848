#!/bin/sh
# test_cuda_backend.sh: the CUDA backend is loaded at run time, never linked
# (issue 10, defect 11). No program of the build links cuBLAS or the CUDA
# runtime, so each starts without mapping them and runs where they are
# absent; a CUDA context without the backend fails with ENG_ERR_NO_DEVICE
# and says why, while the CPU path of the same program still works.
build=${ENGINE_BUILD:-build}
if ! command -v ldd >/dev/null; then
    echo "skip: ldd not found"
    exit 77
fi
if [ ! -x "$build/engine" ] || [ ! -x "$build/convert" ]; then
    echo "skip: $build/engine or $build/convert not built"
    exit 77
fi
fail=0
for bin in "$build/engine" "$build/convert" "$build"/*-bench "$build/libengine.so"; do
    [ -e "$bin" ] || continue
    if ldd "$bin" | grep -E 'libcublas|libcudart' >/dev/null; then
        echo "FAIL: $bin links CUDA: $(ldd "$bin" | grep -E 'libcublas|libcudart' | tr -d '\t' | tr '\n' ' ')"
        fail=1
    fi
done

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$build/convert" --synthetic tiny "$tmp/tiny.eng" >/dev/null || { echo "FAIL: convert"; exit 1; }
if ! echo "a movie" | ENG_CUDA_BACKEND=/nonexistent/libengine-cuda.so \
        "$build/engine" classify "$tmp/tiny.eng" --device cuda >"$tmp/out" 2>"$tmp/err"; then
    if grep -q "CUDA backend not loaded" "$tmp/err"; then
        echo "without the backend: $(cat "$tmp/err")"
    else
        echo "FAIL: no reason naming the missing backend: $(cat "$tmp/err")"
        fail=1
    fi
else
    echo "FAIL: a CUDA context without the backend succeeded"
    fail=1
fi
if ! echo "a movie" | ENG_CUDA_BACKEND=/nonexistent/libengine-cuda.so \
        "$build/engine" embed "$tmp/tiny.eng" >"$tmp/out" 2>"$tmp/err" || [ ! -s "$tmp/out" ]; then
    echo "FAIL: the CPU path failed: $(cat "$tmp/err")"
    fail=1
fi
exit $fail

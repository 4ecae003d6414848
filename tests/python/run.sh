#!/bin/sh
# The Python package's tests (pytest, Debian's python3-pytest), as one test
# program for tests/run-tests.sh: exit 0 passed, 77 skipped (says why), else
# failed. Needs $ENGINE_BUILD/libengine.so (make shared) and the models that
# `make models` converts from $ENGINE_SHARED.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${ENGINE_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$PYTHON" -c "import numpy, pytest" 2>/dev/null; then
    echo "SKIP python: $PYTHON lacks numpy or pytest (apt-get install python3-numpy python3-pytest)"
    exit 77
fi
if [ ! -f "$BUILD/libengine.so" ]; then
    echo "SKIP python: $BUILD/libengine.so absent (make shared)"
    exit 77
fi
# gcc links the sanitizer runtimes as shared libraries; clang leaves the
# library with undefined __ubsan_*/__asan_* symbols for the program to supply.
if ldd "$BUILD/libengine.so" | grep -q 'lib[atu]*san' ||
   nm -D --undefined-only "$BUILD/libengine.so" | grep -q ' __\(asan\|tsan\|ubsan\)_'; then
    echo "SKIP python: $BUILD/libengine.so is a sanitizer build (Python cannot load it first)"
    exit 77
fi
if [ ! -f "$BUILD/models/sst2-bert-mini.eng" ]; then
    echo "SKIP python: $BUILD/models/sst2-bert-mini.eng absent (the shared models are missing)"
    exit 77
fi
cd "$root" && ENGINE_BUILD=$BUILD LIBENGINE_PATH=$BUILD/libengine.so \
    PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m pytest -q -p no:cacheprovider "$here"

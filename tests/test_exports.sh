#!/bin/sh
# test_exports.sh: build/libengine.so exports exactly the public API.
#
# The shared library is compiled with -fvisibility=hidden and ENG_API marks
# the public functions, so its dynamic symbol table must hold every ENG_API
# function of include/engine.h and nothing else: no internal eng__* name, no
# stray helper. A program built against the header alone must then link with
# it and see the version the header states.
build=${ENGINE_BUILD:-build}
lib=$build/libengine.so
if [ ! -f "$lib" ]; then
    echo "skip: $lib not built (make shared)"
    exit 77
fi
if ! command -v nm >/dev/null; then
    echo "skip: nm not found (Debian binutils)"
    exit 77
fi
fail=0
# Defined code and data symbols; the linker's own markers (_edata, _end,
# __bss_start, _init, _fini) are not ours.
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtDdBbRrVvWw]$/ {print $3}' |
           grep -v -x -e _edata -e _end -e __bss_start -e _init -e _fini | sort -u)
public=$(sed -n 's/^ENG_API [^(]*[ *]\(eng_[a-z0-9_]*\)(.*/\1/p' include/engine.h | sort -u)
if [ -z "$public" ]; then
    echo "FAIL: found no ENG_API declarations in include/engine.h"
    fail=1
fi
extra=$(printf '%s\n' "$exported" | grep -v -x -F "$public")
if [ -n "$extra" ]; then
    echo "FAIL: $lib exports names that are not public API:"
    printf '  %s\n' $extra
    fail=1
fi
missing=$(printf '%s\n' "$public" | grep -v -x -F "$exported")
if [ -n "$missing" ]; then
    echo "FAIL: $lib lacks public functions:"
    printf '  %s\n' $missing
    fail=1
fi
echo "$(printf '%s\n' "$exported" | wc -l) exported symbols, $(printf '%s\n' "$public" | wc -l) ENG_API functions"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/client.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "engine.h"
#define S(x) #x
#define V(a, b, c) S(a) "." S(b) "." S(c)
int main(void)
{
    const char *want = V(ENG_VERSION_MAJOR, ENG_VERSION_MINOR, ENG_VERSION_PATCH);
    printf("eng_version() %s, header %s\n", eng_version(), want);
    return strcmp(eng_version(), want) != 0;
}
C
# ENGINE_SAN_FLAGS: the sanitizer flags the library was built with (make asan).
if ! ${CC:-cc} $ENGINE_SAN_FLAGS -Iinclude "$tmp/client.c" -o "$tmp/client" -L"$build" -lengine \
     -Wl,-rpath,"$(cd "$build" && pwd)"; then
    echo "FAIL: a program using include/engine.h alone does not link with $lib"
    fail=1
elif ! "$tmp/client"; then
    echo "FAIL: eng_version() differs from the header's ENG_VERSION_*"
    fail=1
fi
exit $fail

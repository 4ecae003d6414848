#!/bin/sh
# Runs each test binary given on the command line and prints one summary line.
# A test binary exits 0 (all passed), 77 (skipped: it prints why, e.g. the
# shared models are absent) or anything else (failed). Skips are reported as
# skips, never counted as passes.
if [ $# -eq 0 ]; then
    echo "run-tests.sh: no test programs given" >&2
    exit 1
fi
pass=0 fail=0 skip=0 failed=""
for t in "$@"; do
    echo "== $t"
    "$t"
    rc=$?
    if [ $rc -eq 0 ]; then pass=$((pass + 1))
    elif [ $rc -eq 77 ]; then skip=$((skip + 1))
    else fail=$((fail + 1)); failed="$failed $t"
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "test programs: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# `make test`'s suites: every test target of the workspace (what
# `cargo test --workspace --all-targets` runs), built once, then run
# TEST_LANES at a time (default 1), the longest first, the fairness suite
# alone after the others (it measures CPU time). Each suite's output is
# printed whole when it ends, with its time.
#
# A suite spends most of its time waiting on containers, Redis and timeouts
# (the CPU ~90 % idle during the API and hostile suites, measured with
# vmstat), so TEST_LANES=2 takes `make test` from 25 to 13 minutes; it is
# not the default yet: in one of three runs beside the hostile suite, the
# API suite's interactor test ended without its test cases (see the
# issue's note).
#
#   scripts/test-suites.sh [name...]   only the named targets (`api`,
#                                      `hostile`, `code_runner`, ...)
#   TEST_LANES=2 scripts/test-suites.sh   two at a time
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

lanes="${TEST_LANES:-1}"
# Suites that must run with nothing beside them.
alone=" fairness "
# The longest first (seconds measured on CI's machine, run alone); a suite
# not listed is taken as short.
order=(api resilience hostile redis languages short fairness dashboard deploy metrics)

# name <TAB> executable <TAB> package directory, for each test target.
targets="$("${CARGO:-cargo}" test --workspace --all-targets --no-run --message-format=json --quiet |
    python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["target"]["name"], m["executable"], os.path.dirname(m["manifest_path"]), sep="\t")
')"

wanted=" $* "
rank() {
    local i
    for i in "${!order[@]}"; do
        [ "${order[$i]}" = "$1" ] && { echo "$i"; return; }
    done
    echo 99
}
queue=()
last=()
while IFS=$'\t' read -r name exe dir; do
    [ -n "$name" ] || continue
    if [ "$#" -gt 0 ] && [[ "$wanted" != *" $name "* ]]; then
        continue
    fi
    if [[ "$alone" == *" $name "* ]]; then
        last+=("$name"$'\t'"$exe"$'\t'"$dir")
    else
        queue+=("$(rank "$name")"$'\t'"$name"$'\t'"$exe"$'\t'"$dir")
    fi
done <<<"$targets"

logs="$(mktemp -d /tmp/code-runner-tests.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

# Runs one suite, its output kept for the end; prints it whole, and its time.
run_one() {
    local name=$1 exe=$2 dir=$3 log start status=0
    log="$logs/$name.$$.$RANDOM"
    start=$SECONDS
    (cd "$dir" && "$exe") >"$log" 2>&1 || status=$?
    {
        echo "=== suite $name ($(basename "$exe")): $([ "$status" = 0 ] && echo ok || echo "FAILED ($status)") in $((SECONDS - start)) s"
        cat "$log"
    } | flock "$logs" cat
    return "$status"
}
export -f run_one
export logs

failed=0
if [ "${#queue[@]}" -gt 0 ]; then
    printf '%s\n' "${queue[@]}" | sort -n -k1,1 | cut -f2- |
        xargs -d '\n' -P "$lanes" -I{} bash -c 'IFS=$'"'"'\t'"'"' read -r n e d <<<"$1"; run_one "$n" "$e" "$d"' _ {} ||
        failed=1
fi
for entry in "${last[@]}"; do
    IFS=$'\t' read -r name exe dir <<<"$entry"
    run_one "$name" "$exe" "$dir" || failed=1
done
if [ "$failed" != 0 ]; then
    echo "test-suites: some suites failed (see above)" >&2
    exit 1
fi
echo "test-suites: every suite passed"

#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with schemathesis (from PyPI):
# a real service (real Redis, real Docker) answers generated requests, and
# the run fails on any 5xx, crash, undocumented status code, or response
# that does not match the document. Judge0's submission (two dozen
# attributes, each a string, number, boolean or null) makes Hypothesis
# discard many of its generated bodies (non-finite numbers cannot be sent
# as JSON): its "filtered too much" health check is off, the others on.
#
#   scripts/fuzz.sh [st options]   FUZZ_EXAMPLES (default 25) per operation,
#                                  FUZZ_SEED (default fixed, for repeatable CI),
#                                  FUZZ_WORKERS (default 1: with 4 the coverage
#                                  phase took 703 s instead of 366 in CI);
#                                  options go to `st run` (e.g.
#                                  --include-path-regex '^/submissions')
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=target/fuzz-venv
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi
# The service's binary as the test suites build it (the same features: a
# `cargo build` of the binary alone would build it again with fewer).
"${CARGO:-cargo}" test --workspace --all-targets --no-run --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
work="$(mktemp -d /tmp/code-runner-fuzz.XXXXXX)"
CODE_RUNNER_LISTEN="127.0.0.1:$port" \
CODE_RUNNER_ADMIN_LISTEN="127.0.0.1:$(free_port)" \
CODE_RUNNER_REDIS_URL="${CODE_RUNNER_TEST_REDIS_URL:-redis://127.0.0.1:6379}" \
CODE_RUNNER_REDIS_PREFIX="{code-runner-test}" \
CODE_RUNNER_QUEUE="fuzz-$$-$RANDOM" \
CODE_RUNNER_DATA_DIR="$work/data" \
CODE_RUNNER_MAX_WAIT_MS=2000 \
CODE_RUNNER_WALL_TIME_LIMIT_MS=2000 \
CODE_RUNNER_SUBMIT_RATE_LIMIT_PER_MINUTE=0 \
CODE_RUNNER_REQUEST_RATE_LIMIT_PER_MINUTE=0 \
RUST_LOG=warn \
    ./target/debug/code-runner serve >"$work/service.log" 2>&1 &
service=$!
stop() {
    kill -TERM "$service" 2>/dev/null || true
    wait "$service" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done

status=0
# schemathesis keeps a cache in its working directory: not in the repository.
root="$PWD"
cd "$work"
"$root/$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,missing_required_header,unsupported_method \
    --max-examples "${FUZZ_EXAMPLES:-25}" \
    --seed "${FUZZ_SEED:-20261126}" \
    --workers "${FUZZ_WORKERS:-1}" \
    --request-timeout 60 \
    --suppress-health-check=filter_too_much \
    --no-shrink "$@" || status=$?
if [ "$status" != 0 ]; then
    echo "fuzz: failures above; the service's log ends:" >&2
    tail -n 40 "$work/service.log" >&2
fi
if ! kill -0 "$service" 2>/dev/null; then
    echo "fuzz: the service died during the run" >&2
    status=1
fi
exit "$status"

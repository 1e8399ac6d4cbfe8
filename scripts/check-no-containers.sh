#!/usr/bin/env bash
# Fails when any container created by code-runner is left on this engine
# (run after the test suite: every test must clean up after itself).
set -euo pipefail
left="$(docker ps -aq --filter label=code-runner.managed=1)"
if [ -n "$left" ]; then
    echo "containers left behind by code-runner:" >&2
    docker ps -a --filter label=code-runner.managed=1 >&2
    exit 1
fi
echo "no code-runner containers left behind"

#!/usr/bin/env bash
# Fails when any container created by code-runner is left on this engine
# (run after the test suite: every test must clean up after itself).
#
#   scripts/check-no-containers.sh --remove-stale   before a run: removes what
#       an earlier, interrupted run left (listing it), so that the check after
#       the run judges that run alone
set -euo pipefail
if [ "${1:-}" = "--remove-stale" ]; then
    stale="$(docker ps -aq --filter label=code-runner.managed=1)"
    if [ -n "$stale" ]; then
        echo "removing containers an earlier run left:" >&2
        docker ps -a --filter label=code-runner.managed=1 >&2
        echo "$stale" | xargs docker rm -f >/dev/null
    fi
    exit 0
fi
left="$(docker ps -aq --filter label=code-runner.managed=1)"
if [ -n "$left" ]; then
    echo "containers left behind by code-runner:" >&2
    docker ps -a --filter label=code-runner.managed=1 >&2
    exit 1
fi
echo "no code-runner containers left behind"

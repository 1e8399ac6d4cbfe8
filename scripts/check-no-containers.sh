#!/usr/bin/env bash
# Fails when any container created by code-runner's tests is left on this
# engine (run after the test suite: every test must clean up after itself).
#
#   scripts/check-no-containers.sh --remove-stale   before a run: removes what
#       an earlier, interrupted run left (listing it), so that the check after
#       the run judges that run alone
#
# Only the tests' own containers are looked at: those of a queue under the
# tests' Redis prefix (`{code-runner-test}`, every test queue's), on any
# Redis. A service running beside the tests on the same engine (`make run`
# in another terminal, a deployment) keeps its warm pool and running jobs:
# its containers carry its own queue. (CODE_RUNNER_TEST_PREFIX names another
# prefix: the tests of this script use one of their own.)
set -euo pipefail
prefix="${CODE_RUNNER_TEST_PREFIX:-{code-runner-test\}}:"

# The ids of the tests' containers, running or not.
test_containers() {
    docker ps -a --filter label=code-runner.managed=1 \
        --format '{{.ID}} {{.Label "code-runner.queue"}}' |
        awk -v prefix="$prefix" 'index($2, prefix) == 1 { print $1 }'
}

show() {
    # shellcheck disable=SC2086
    docker ps -a $(printf -- '--filter id=%s ' $1) \
        --format 'table {{.ID}}\t{{.Names}}\t{{.Status}}\t{{.Label "code-runner.queue"}}' >&2
}

if [ "${1:-}" = "--remove-stale" ]; then
    stale="$(test_containers)"
    if [ -n "$stale" ]; then
        echo "removing test containers an earlier run left:" >&2
        show "$stale"
        echo "$stale" | xargs docker rm -f >/dev/null
    fi
    exit 0
fi
left="$(test_containers)"
if [ -n "$left" ]; then
    echo "containers left behind by code-runner's tests:" >&2
    show "$left"
    exit 1
fi
echo "no code-runner test containers left behind"

#!/usr/bin/env bash
# Installs and starts what code-runner needs on a Debian/Ubuntu machine, and
# builds the runner images. Quick (about a second) when all is in place.
#
#   scripts/setup.sh            Docker engine running, runner images built
#   scripts/setup.sh --redis    ... and a Redis answering on 127.0.0.1:6379
#                               (the tests need one; `code-runner serve`
#                               starts its own when none answers)
#   scripts/setup.sh --gvisor   ... and gVisor (runsc) registered with the
#                               engine as the runtime `runsc`
#   scripts/setup.sh --background-images   the runner images build in the
#                               background (core languages first) and it
#                               returns at once, so the service's own build
#                               runs beside them (what `make run` does; the
#                               tests want them all built first)
#
# Installing needs root (apt-get); everything else works as any user that
# may use the Docker socket.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
want_redis=0
want_gvisor=0
background_images=0
for arg in "$@"; do
    case "$arg" in
        --redis) want_redis=1 ;;
        --gvisor) want_gvisor=1 ;;
        --background-images) background_images=1 ;;
        *) echo "usage: $0 [--redis] [--gvisor] [--background-images]" >&2; exit 2 ;;
    esac
done

log() { echo "setup: $*" >&2; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# docker/build-images.sh reads the language table with Python's TOML parser.
command -v python3 >/dev/null || missing+=(python3)
[ "$want_gvisor" = 1 ] && { command -v runsc >/dev/null || missing+=(runsc); }
# The tests check interoperability with Node BullMQ and Judge0's and
# Piston's clients.
if [ "$want_redis" = 1 ]; then
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    # Judge0's Python SDK (tests/interop) and the fuzzer live in venvs.
    python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
    # The dashboard's browser test.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    # The deployment test brings deploy/compose.yaml up and down.
    command -v docker-compose >/dev/null || missing+=(docker-compose)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        log "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Docker engine.
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "the Docker engine is not running and only root can start it here"
        exit 1
    fi
    # A dockerd that was killed leaves its pid file behind and refuses to
    # start while it exists.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        log "removing stale /var/run/docker.pid"
        rm -f /var/run/docker.pid
    fi
    if [ -f /run/containerd/containerd.pid ] && ! kill -0 "$(cat /run/containerd/containerd.pid)" 2>/dev/null; then
        rm -f /run/containerd/containerd.pid
    fi
    log "starting dockerd (log: /var/log/dockerd.log)"
    # In a session of its own (setsid), detached from this shell's process
    # group and terminal: stopping `make run` with Ctrl-C, or a CI step
    # ending, must never take the engine (and every job container) with it.
    setsid nohup dockerd </dev/null >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

# gVisor: the runtime `runsc`, with no network of its own.
if [ "$want_gvisor" = 1 ] && ! docker info 2>/dev/null | grep -q 'Runtimes:.*runsc'; then
    [ "$(id -u)" = 0 ] || { log "registering runsc with the engine needs root"; exit 1; }
    mkdir -p /etc/docker
    python3 - /etc/docker/daemon.json "$(command -v runsc)" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
config.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
json.dump(config, open(path, "w"), indent=2)
PY
    log "registered runsc in /etc/docker/daemon.json; reloading dockerd"
    kill -HUP "$(cat /var/run/docker.pid)"
    for _ in $(seq 1 50); do
        docker info 2>/dev/null | grep -q 'Runtimes:.*runsc' && break
        sleep 0.2
    done
    docker info 2>/dev/null | grep -q 'Runtimes:.*runsc' || { log "dockerd did not pick up runsc"; exit 1; }
fi

# Redis for the tests.
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
redis_answers() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if [ "$want_redis" = 1 ] && ! redis_answers; then
    dir="${CODE_RUNNER_TEST_REDIS_DIR:-/tmp/code-runner-test-redis}"
    mkdir -p "$dir"
    log "starting redis-server on 127.0.0.1:6379 (data: $dir)"
    redis-server --bind 127.0.0.1 --port 6379 --dir "$dir" --appendonly yes \
        --daemonize yes --logfile "$dir/redis.log" >/dev/null
fi
if [ "$want_redis" = 1 ]; then
    # Up, and done loading its data (it answers LOADING until then).
    for _ in $(seq 1 300); do
        redis_up && break
        sleep 0.1
    done
    redis_up || { log "redis-server on 127.0.0.1:6379 does not answer PONG"; exit 1; }
fi

# The runner images (skipped when current).
if [ "$background_images" = 1 ]; then
    docker/build-images.sh --background
else
    docker/build-images.sh
fi

#!/usr/bin/env bash
# Builds the service's image, code-runner/service:latest (see Dockerfile).
#
#   docker/service/build.sh              release build of the binary, then the image
#   docker/service/build.sh BINARY       the image around an existing binary
#                                        (the tests use the one they run)
#
# The base image comes from docker/build-images.sh (run first; offline).
# SERVICE_IMAGE names the image; BASE_IMAGE the base.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
image="${SERVICE_IMAGE:-code-runner/service:latest}"
base="${BASE_IMAGE:-code-runner/base:bookworm}"
binary="${1:-}"
if [ -z "$binary" ]; then
    cargo build --release --bin code-runner
    binary=target/release/code-runner
fi
[ -x "$binary" ] || { echo "service image: no binary at $binary" >&2; exit 1; }
docker image inspect "$base" >/dev/null 2>&1 \
    || { echo "service image: no $base; run docker/build-images.sh first" >&2; exit 1; }
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp docker/service/Dockerfile "$context/"
cp "$binary" "$context/code-runner"
# Debug builds carry line tables; the image does not need them.
strip "$context/code-runner" 2>/dev/null || true
docker build --quiet --build-arg "BASE_IMAGE=$base" -t "$image" "$context" >/dev/null
echo "service image: built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))" >&2

#!/usr/bin/env bash
# Builds the runner image of every language under docker/<language>/.
#
#   docker/build-images.sh [language ...]     (default: every language)
#
# Each image is tagged code-runner/<language>:latest and labelled with a hash
# of everything that went into it (its folder, the monitor's sources, this
# script); an image whose label matches is current and is not rebuilt, so a
# second run takes about a second. Each image is also labelled with the
# version it really provides (code-runner.version, from the file its
# Dockerfile writes to /etc/code-runner/version).
#
# The monitor (PID 1 of every job container, monitor/ in this repository) is
# built first as a static binary into docker/.build/ (needs cargo).
#
# Offline / air-gapped: each Dockerfile starts `ARG BASE_IMAGE=<upstream>`.
# When that base is neither present nor pullable, an equivalent base is built
# from Debian packages (debootstrap --variant=minbase plus the packages listed
# in docker/<language>/debian-packages) and imported with `docker import`; the
# Dockerfile is then built on it with --build-arg BASE_IMAGE=<that base>.
# Downloaded packages are cached in /var/cache/code-runner/debootstrap.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DEBIAN_SUITE (default bookworm), CODE_RUNNER_IMAGE_PREFIX (default code-runner).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-bookworm}"
prefix="${CODE_RUNNER_IMAGE_PREFIX:-code-runner}"
cache="${CODE_RUNNER_DEBOOTSTRAP_CACHE:-/var/cache/code-runner/debootstrap}"
# The engine here is older than the client's default builder; the classic
# builder needs no plugin and works with every engine we support.
export DOCKER_BUILDKIT=0

log() { echo "build-images: $*" >&2; }

# docker build, quiet unless it fails (the classic builder's deprecation
# notice is noise here).
quiet_build() {
    local out
    if ! out="$(docker build -q "$@" 2>&1 >/dev/null)"; then
        echo "$out" >&2
        return 1
    fi
}

hash_of() {
    # Content hash of files (names and bytes), stable across checkouts.
    (cd "$root" && find "$@" -type f -not -path '*/.build/*' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

monitor_hash="$(hash_of monitor/src monitor/Cargo.toml)"

# The monitor: a static binary, copied into every image.
build_monitor() {
    local out="$here/.build/code-runner-monitor"
    if [ -x "$out" ] && [ "$(cat "$here/.build/monitor.hash" 2>/dev/null)" = "$monitor_hash" ]; then
        return
    fi
    command -v cargo >/dev/null || { log "cargo is needed to build the monitor"; exit 1; }
    local triple
    triple="$(rustc -vV | sed -n 's/^host: //p')"
    log "building the monitor (static, $triple)"
    (cd "$root" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
        -p code-runner-monitor --target "$triple" --target-dir "$root/target/monitor")
    mkdir -p "$here/.build"
    cp "$root/target/monitor/$triple/release/code-runner-monitor" "$out"
    echo "$monitor_hash" > "$here/.build/monitor.hash"
}

# Builds (once) a base image from Debian packages and prints its tag.
debian_base() {
    local language="$1"
    local packages
    packages="$(grep -v '^#' "$here/$language/debian-packages" | xargs | tr ' ' ',')"
    local tag="$prefix/base-$language:$suite"
    local want
    want="$(echo "$suite $mirror $packages" | sha256sum | cut -c1-16)"
    if [ "$(image_label "$tag" code-runner.base-hash)" = "$want" ]; then
        echo "$tag"
        return
    fi
    command -v debootstrap >/dev/null || {
        log "debootstrap is needed to build $tag offline (apt-get install debootstrap)"
        exit 1
    }
    local rootfs
    rootfs="$(mktemp -d /tmp/code-runner-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' RETURN
    mkdir -p "$cache"
    log "building $tag from Debian $suite packages: ${packages:-(minbase only)}"
    local include=()
    [ -n "$packages" ] && include=(--include="$packages")
    debootstrap --variant=minbase --cache-dir="$cache" "${include[@]}" \
        "$suite" "$rootfs" "$mirror" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc "$rootfs"/usr/share/man
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL code-runner.base-hash=$want" \
        - "$tag" >/dev/null
    echo "$tag"
}

build_language() {
    local language="$1"
    local dir="$here/$language"
    [ -f "$dir/Dockerfile" ] || { log "no Dockerfile in $dir"; exit 1; }
    local tag="$prefix/$language:latest"
    local want
    want="$(hash_of "docker/$language" docker/build-images.sh)-$monitor_hash"
    if [ "$(image_label "$tag" code-runner.build-hash)" = "$want" ]; then
        log "$tag is current"
        return
    fi
    build_monitor
    local upstream
    upstream="$(sed -n 's/^ARG BASE_IMAGE=//p' "$dir/Dockerfile" | head -n1)"
    local args=()
    if [ -n "$upstream" ] && ! docker image inspect "$upstream" >/dev/null 2>&1 \
        && ! timeout 60 docker pull -q "$upstream" >/dev/null 2>&1; then
        log "$upstream cannot be pulled; using a base built from Debian packages"
        args+=(--build-arg "BASE_IMAGE=$(debian_base "$language")")
    fi
    log "building $tag"
    quiet_build "${args[@]}" --label "code-runner.language=$language" \
        -f "$dir/Dockerfile" -t "$tag" "$here"
    local version
    version="$(docker run --rm --network none --entrypoint cat "$tag" /etc/code-runner/version)"
    # The same build again (every layer cached) with the labels that mark
    # it current and say its version.
    quiet_build "${args[@]}" --label "code-runner.language=$language" \
        --label "code-runner.version=$version" --label "code-runner.build-hash=$want" \
        -f "$dir/Dockerfile" -t "$tag" "$here"
    log "built $tag ($language $version)"
}

languages=("$@")
if [ "${#languages[@]}" -eq 0 ]; then
    for d in "$here"/*/Dockerfile; do languages+=("$(basename "$(dirname "$d")")"); done
fi
for language in "${languages[@]}"; do build_language "$language"; done

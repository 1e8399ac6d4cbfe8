#!/usr/bin/env bash
# Builds the runner images from Debian packages, offline from any container
# registry: one shared base, then one image per recipe under docker/images/.
#
#   docker/build-images.sh [image ...]      (default: every image the
#                                            language table names, in its order)
#   docker/build-images.sh --core-first     the core languages' images (core =
#       true in the table), then the others in the background (log:
#       /tmp/code-runner-image-builds/background.log): what `make run` does, so
#       that on a fresh machine the service starts serving the core languages
#       while the rest build (each is served from the moment its image exists)
#   docker/build-images.sh --background     every stale image, in the table's
#       order (the core languages first), in the background at low priority
#       (nice 10; same log), returning at once: what `make run` does, so the
#       service's own build runs beside the image builds instead of after them
#
# One build at a time: a build waits for one already running (a lock);
# --core-first and --background return at once when one is running.
#
# The base (code-runner/base:bookworm) is a minimal Debian made once with
# debootstrap and imported with `docker import`; it keeps apt's package lists,
# so a recipe installs its packages with `apt-get install` and nothing else.
# Each image (code-runner/<image>:latest) is docker/runner.Dockerfile built on
# that base with one recipe:
#
#   docker/images/<image>/packages   the Debian packages (one or more a line,
#                                    # comments allowed)
#   docker/images/<image>/setup      optional: a shell script run as root
#                                    after the packages are in
#   docker/images/<image>/downloads  optional: files fetched from a package
#                                    registry (PyPI) at build time, each
#                                    checked by its SHA-256, put in the
#                                    recipe's .build/ folder for its setup
#                                    (cached in /var/cache/code-runner/downloads;
#                                    never committed)
#
# A recipe may serve several languages (every entry of docker/languages.toml
# whose `image` names it): the C-family compilers share one image, so do the
# small interpreters. Each image is labelled with a hash of what went into it
# (the base, its recipe, the template, the monitor, its languages'
# version_command); an image whose label matches is current and is not
# rebuilt, so a second run takes about a second. Images build in parallel
# (CODE_RUNNER_BUILD_JOBS at a time, default 3: apt downloads and dpkg's
# unpacking overlap well on two cores), in the table's order, so the first
# languages are ready first.
#
# After a build each language's version_command runs in the image and the
# versions it prints are put on the image as the label code-runner.versions
# (a JSON object: language id -> version), which workers report.
#
# The monitor (PID 1 of every job container, monitor/ in this repository) is
# built first as a static binary into docker/.build/ (needs cargo).
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DEBIAN_SUITE (default bookworm), CODE_RUNNER_IMAGE_PREFIX (default
# code-runner), CODE_RUNNER_BUILD_JOBS (default 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-bookworm}"
prefix="${CODE_RUNNER_IMAGE_PREFIX:-code-runner}"
jobs="${CODE_RUNNER_BUILD_JOBS:-3}"
cache="${CODE_RUNNER_DEBOOTSTRAP_CACHE:-/var/cache/code-runner/debootstrap}"
logs="${CODE_RUNNER_BUILD_LOGS:-/tmp/code-runner-image-builds}"
downloads="${CODE_RUNNER_DOWNLOAD_CACHE:-/var/cache/code-runner/downloads}"
# The engine here is older than the client's default builder; the classic
# builder needs no plugin and works with every engine we support.
export DOCKER_BUILDKIT=0

log() { echo "build-images: $(date +%T) $*" >&2; }

hash_of() {
    # Content hash of files (names and bytes), stable across checkouts.
    (cd "$root" && find "$@" -type f -not -path '*/.build/*' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# The language table, read with Python's TOML parser: prints one line per
# language, "<image>\t<id>\t<version_command>", in the table's order.
table() {
    python3 - "$here/languages.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    table = tomllib.load(f)
for language in table["language"]:
    command = language.get("version_command", "")
    core = "1" if language.get("core") else "0"
    print(f"{language['image']}\t{language['id']}\t{command}\t{core}")
PY
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

base_tag="$prefix/base:$suite"
base_hash="$(echo "$suite $mirror $(hash_of docker/base)" | sha256sum | cut -c1-16)"

# The shared base, built once from Debian packages.
build_base() {
    if [ "$(image_label "$base_tag" code-runner.base-hash)" = "$base_hash" ]; then
        return
    fi
    command -v debootstrap >/dev/null || {
        log "debootstrap is needed to build $base_tag (apt-get install debootstrap)"
        exit 1
    }
    local rootfs
    rootfs="$(mktemp -d /tmp/code-runner-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' RETURN
    mkdir -p "$cache"
    log "building $base_tag (debootstrap $suite, minbase)"
    debootstrap --variant=minbase --cache-dir="$cache" "$suite" "$rootfs" "$mirror" >/dev/null
    cp "$here/base/apt.conf" "$rootfs/etc/apt/apt.conf.d/90code-runner"
    cp "$here/base/dpkg.cfg" "$rootfs/etc/dpkg/dpkg.cfg.d/90code-runner"
    echo "deb $mirror $suite main" > "$rootfs/etc/apt/sources.list"
    # Package lists stay (the recipes install from them); docs do not.
    chroot "$rootfs" apt-get update -q >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL code-runner.base-hash=$base_hash" \
        - "$base_tag" >/dev/null
    log "built $base_tag"
}

# The languages an image serves, as "<id>\t<version_command>" lines.
languages_of() {
    awk -F'\t' -v image="$1" '$1 == image { print $2 "\t" $3 }' <<<"$table_lines"
}

# What an image's build-hash label must be for it to be current.
want_hash() {
    echo "$( (hash_of "docker/images/$1" docker/runner.Dockerfile; languages_of "$1") \
        | sha256sum | cut -c1-16)-$base_hash-$monitor_hash"
}

# Fetches an image's downloads (see above) into its recipe's .build/.
fetch_downloads() {
    local list="$here/images/$1/downloads"
    [ -f "$list" ] || return 0
    mkdir -p "$downloads" "$here/images/$1/.build"
    python3 - "$list" "$downloads" "$here/images/$1/.build" <<'PY'
import hashlib, io, os, sys, urllib.request, zipfile
listing, cache, out = sys.argv[1:]
for line in open(listing):
    line = line.split("#", 1)[0].split()
    if not line:
        continue
    url, digest, member, member_digest, name = line
    cached = os.path.join(cache, digest)
    if not os.path.exists(cached):
        data = urllib.request.urlopen(url, timeout=120).read()
        if hashlib.sha256(data).hexdigest() != digest:
            sys.exit(f"{url}: its SHA-256 is not {digest}")
        with open(cached + ".part", "wb") as f:
            f.write(data)
        os.rename(cached + ".part", cached)
    content = zipfile.ZipFile(cached).read(member)
    if hashlib.sha256(content).hexdigest() != member_digest:
        sys.exit(f"{member} in {url}: its SHA-256 is not {member_digest}")
    with open(os.path.join(out, name), "wb") as f:
        f.write(content)
PY
}

is_current() {
    [ "$(image_label "$prefix/$1:latest" code-runner.build-hash)" = "$(want_hash "$1")" ]
}

build_image() {
    local image="$1"
    local dir="$here/images/$image"
    [ -f "$dir/packages" ] || { log "no recipe: $dir/packages is missing"; return 1; }
    local tag="$prefix/$image:latest"
    local want
    want="$(want_hash "$image")"
    if [ "$(image_label "$tag" code-runner.build-hash)" = "$want" ]; then
        return
    fi
    local started=$SECONDS
    log "building $tag"
    fetch_downloads "$image"
    docker build -q --network host --build-arg "BASE_IMAGE=$base_tag" \
        --build-arg "RECIPE=$image" -f "$here/runner.Dockerfile" -t "$tag.building" "$here" >/dev/null
    # Every language's version, asked of the image itself.
    local script="" id command
    while IFS=$'\t' read -r id command; do
        [ -n "$id" ] || continue
        [ -n "$command" ] || { log "$id has no version_command"; return 1; }
        script+="v=\$( { $command ; } 2>/dev/null | head -n1); printf '%s\\t%s\\n' '$id' \"\$v\";"
    done < <(languages_of "$image")
    local versions
    if ! versions="$(docker run --rm --network none --user 65534:65534 -e HOME=/tmp --entrypoint /bin/sh \
        "$tag.building" -c "$script" | python3 -c '
import json, sys
versions = {}
for line in sys.stdin:
    id, _, version = line.rstrip("\n").partition("\t")
    version = version.strip()
    if not version:
        sys.exit(f"{id}: its version_command printed nothing")
    versions[id] = version
print(json.dumps(versions, sort_keys=True))')"; then
        docker rmi -f "$tag.building" >/dev/null 2>&1 || true
        return 1
    fi
    # The labels that mark the image current and say its versions (a layer
    # of metadata only).
    local previous
    previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    printf 'FROM %s\n' "$tag.building" | docker build -q \
        --label "code-runner.image=$image" --label "code-runner.versions=$versions" \
        --label "code-runner.build-hash=$want" -t "$tag" - >/dev/null
    docker rmi -f "$tag.building" >/dev/null 2>&1 || true
    # The image this one replaces, untagged now: removed unless a container
    # still uses it (each monitor change would otherwise leave one image per
    # recipe behind, gigabytes after a few rebuilds).
    if [ -n "$previous" ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
    log "built $tag in $((SECONDS - started)) s: $versions"
}

if [ "${1:-}" = "--background" ]; then
    mkdir -p "$logs"
    exec 9>"$logs/.lock"
    if ! flock -n 9; then
        log "images are being built in the background already (log: $logs/background.log)"
        exit 0
    fi
    stale=0
    while read -r image; do
        is_current "$image" || stale=$((stale + 1))
    done < <(table | cut -f1 | awk '!seen[$0]++')
    exec 9>&-
    if [ "$stale" -gt 0 ]; then
        log "$stale images build in the background (log: $logs/background.log);" \
            "GET /v1/languages says which languages are ready"
        setsid nohup nice -n 10 "$0" </dev/null >"$logs/background.log" 2>&1 &
    fi
    exit 0
fi
core_first=0
if [ "${1:-}" = "--core-first" ]; then
    core_first=1
    shift
fi
table_lines="$(table)"
images=("$@")
if [ "$core_first" = 1 ]; then
    mapfile -t images < <(awk -F'\t' '$4 == "1" { print $1 }' <<<"$table_lines" | awk '!seen[$0]++')
elif [ "${#images[@]}" -eq 0 ]; then
    mapfile -t images < <(cut -f1 <<<"$table_lines" | awk '!seen[$0]++')
fi

mkdir -p "$logs"
exec 9>"$logs/.lock"
if [ "$core_first" = 1 ]; then
    if ! flock -n 9; then
        log "images are being built in the background already (log: $logs/background.log)"
        exit 0
    fi
elif ! flock -n 9; then
    log "waiting for the image build already running (log: $logs/background.log)"
    flock 9
fi
build_monitor
build_base

# Builds run in parallel, `jobs` at a time; each one's output goes to its
# own log, shown when it fails.
started=$SECONDS
failed=()
declare -A running=()
# Waits for one build to end and reports it.
reap() {
    local pid status=0
    wait -n -p pid || status=$?
    local image="${running[$pid]}"
    unset "running[$pid]"
    if [ "$status" = 0 ]; then
        grep -h ' built ' "$logs/$image.log" >&2 || true
    else
        log "building $image failed:"
        tail -n 30 "$logs/$image.log" >&2
        failed+=("$image")
    fi
}
for image in "${images[@]}"; do
    while [ "${#running[@]}" -ge "$jobs" ]; do reap; done
    build_image "$image" >"$logs/$image.log" 2>&1 &
    running[$!]="$image"
done
while [ "${#running[@]}" -gt 0 ]; do reap; done
if [ "${#failed[@]}" -gt 0 ]; then
    log "failed: ${failed[*]} (logs in $logs)"
    exit 1
fi
if [ $((SECONDS - started)) -gt 2 ]; then
    log "images ready in $((SECONDS - started)) s"
fi
if [ "$core_first" = 1 ]; then
    exec 9>&-
    stale=0
    while read -r image; do
        is_current "$image" || stale=$((stale + 1))
    done < <(cut -f1 <<<"$table_lines" | awk '!seen[$0]++')
    if [ "$stale" -gt 0 ]; then
        log "core images ready; the other $stale build in the background" \
            "(log: $logs/background.log); GET /v1/languages says which are ready"
        setsid nohup "$0" </dev/null >"$logs/background.log" 2>&1 &
    fi
fi

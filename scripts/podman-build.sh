#!/usr/bin/env bash
# Build the project's Dockerfile with podman where no container registry can be reached.
#
# The Dockerfile's base image is an argument (BASE, python:3.12-slim by default). Without a
# registry we make a stand-in from Debian's own packages instead: debootstrap a minimal
# bookworm, add python3 and pip, and make it behave like the official slim images (`python`
# on the PATH, pip allowed to install system-wide). That base is built once and kept in the
# podman storage under $CITCON_SIM_PODMAN (later builds reuse it).
#
# usage: scripts/podman-build.sh [TAG]       (default tag: localhost/citcon-sim:test)
#        prints the image's tag, then its base's
# env:   CITCON_SIM_PODMAN  podman storage and settings (default: ~/.cache/citcon-sim-podman)
#        BASE               build on this image instead (skips debootstrap), e.g. one a
#                           registry does serve: BASE=docker.io/library/python:3.12-slim
# Needs root, podman, runc and debootstrap (Debian: apt-get install podman debootstrap runc).
# Afterwards run podman as `scripts/podman-build.sh --podman ARGS...` to use the same storage.
set -euo pipefail

LAB=${CITCON_SIM_PODMAN:-$HOME/.cache/citcon-sim-podman}
CONTEXT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL_BASE=localhost/citcon-sim-base:bookworm
mkdir -p "$LAB"

# No systemd and no cgroup delegation in a CI sandbox: plain cgroupfs, runc, events to a file.
# Limits podman would set above what this sandbox lets a process have: the host's own hard
# open-files limit, and a modest process cap.
cat > "$LAB/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$LAB/containers.conf
pm() { podman --root "$LAB/storage" --runroot "$LAB/run" "$@"; }

if [ "${1:-}" = "--podman" ]; then
  shift
  pm "$@"
  exit
fi
TAG=${1:-localhost/citcon-sim:test}

pull=missing  # a BASE given here comes from a registry
if [ -z "${BASE:-}" ]; then
  BASE=$LOCAL_BASE
  pull=never
  if ! pm image exists "$BASE"; then
    # The mirror apt already uses: the only package source this machine is known to reach.
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
             || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$(mktemp -d "$LAB/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    chroot "$root" sh -euc "
      printf 'deb %s bookworm main\n' '$mirror' > /etc/apt/sources.list
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends python3 python3-pip ca-certificates >/dev/null
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
      # What the official python images do: pip may install system-wide, python is python3.
      rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
      ln -sf /usr/bin/python3 /usr/local/bin/python"
    tar -C "$root" -c . | pm import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
      - "$BASE" >/dev/null
  fi
fi

# pip in the build stage may sit behind a proxy with its own certificate authority: lend the
# host's CA bundle to the build, read-only. A bind mount is never part of an image layer.
ca=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
# --no-cache: buildah reuses a cached RUN whose bind mount (the runtime stage's wheels from
# the build stage) changed, so a cached build could ship the previous wheels.
pm build -q --no-cache --format docker --pull="$pull" --build-arg "BASE=$BASE" "${ca[@]}" \
  -t "$TAG" "$CONTEXT" >/dev/null
printf '%s\n%s\n' "$TAG" "$BASE"   # the image, and the base it was built on

#!/usr/bin/env bash
# Build the sandbox image `torl-sandbox:latest` without pulling from a registry (idempotent).
#
# debootstrap a minimal Debian with python3, numpy, sympy and scipy into a folder, then
# `docker import` it. Needs root, debootstrap and a reachable Debian mirror (about 90 s).
# If you can pull from Docker Hub, `docker build -t torl-sandbox:latest src/torl/tools/`
# (the Dockerfile there) gives an equivalent image.
#
# Env: TORL_SANDBOX_IMAGE (image name), DEBIAN_SUITE (default bookworm), DEBIAN_MIRROR,
#      TORL_CACHE (cache folder for downloaded .debs), FORCE=1 to rebuild.
set -euo pipefail
IMAGE=${TORL_SANDBOX_IMAGE:-torl-sandbox:latest}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${TORL_CACHE:-$HOME/.cache/torl}/debootstrap-$SUITE
PACKAGES=python3,python3-numpy,python3-sympy,python3-scipy,python3-mpmath

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE already exists (FORCE=1 to rebuild)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$CACHE"
ROOT=$(mktemp -d /tmp/torl-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --cache-dir="$CACHE" --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR"
# Slim the tree: docs, locales, apt lists and caches are not needed to run Python.
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* \
  "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/*
# Pre-compile bytecode so the read-only container never tries to write .pyc files.
chroot "$ROOT" python3 -m compileall -q /usr/lib/python3 >/dev/null 2>&1 || true
tar -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV PYTHONDONTWRITEBYTECODE=1' \
  -c 'USER 65534:65534' \
  -c 'WORKDIR /tmp' \
  -c 'CMD ["python3"]' \
  -c 'LABEL org.torl.sandbox=1' \
  - "$IMAGE"
docker run --rm --network none "$IMAGE" python3 -c "import numpy, sympy, scipy; print('numpy', numpy.__version__, 'sympy', sympy.__version__, 'scipy', scipy.__version__)"
echo "built $IMAGE"

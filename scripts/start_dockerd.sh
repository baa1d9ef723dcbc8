#!/usr/bin/env bash
# Start a local Docker engine if none answers (idempotent). Used by CI and by developers.
# Honours DOCKER_HOST: with a remote engine set there, this only checks that it answers.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ] && [[ "${DOCKER_HOST}" != unix://* ]]; then
  echo "DOCKER_HOST=${DOCKER_HOST} does not answer" >&2
  exit 1
fi
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
# setsid: the daemon outlives this script and its caller's process group.
setsid dockerd >"$LOG" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd is up (log: $LOG)"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not start within 60 s; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2
exit 1

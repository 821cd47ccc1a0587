#!/bin/sh
# Entrypoint of the LabelFleet service image.
#
# The service drives Docker through the socket mounted at DOCKER_SOCKET. Which group owns that
# socket differs from host to host, so the image starts as root only to read it, then drops to
# the unprivileged `node` user with that group added (setpriv, util-linux) — no capabilities kept.
# Started as any other user (`user:` in compose, a Kubernetes securityContext), it runs as that
# user and the group must be given by you (`group_add`).
set -eu
heap="${FLEET_HEAP_MB:-192}"
if [ "$(id -u)" = 0 ]; then
  socket="${DOCKER_SOCKET:-/var/run/docker.sock}"
  groups="$(id -g node)"
  if [ -S "$socket" ]; then groups="$groups,$(stat -c %g "$socket")"; fi
  exec setpriv --reuid=node --regid=node --groups="$groups" --inh-caps=-all --bounding-set=-all \
    node --max-old-space-size="$heap" /app/dist/fleet.mjs "$@"
fi
exec node --max-old-space-size="$heap" /app/dist/fleet.mjs "$@"

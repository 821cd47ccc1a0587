#!/usr/bin/env bash
# npm run env:down [-- --all]
# Stops the Traefik and moto_server that env:up started (by their pid files), removes every
# container labelled labelfleet.managed=true and the test routes in the Traefik dynamic dir.
# dockerd, images, the venv and the rootfs tarball stay (they are the cache) unless --all, which
# also removes labelfleet/* images and stops the dockerd that env:up started.
# The venv and rootfs tarball in $LABELFLEET_CACHE are never deleted here: rm -rf it for that.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all=0
case "${1:-}" in
  --all) all=1 ;;
  "") ;;
  *) die "usage: down.sh [--all]" ;;
esac

stop_pidfile "$RUN_DIR/traefik.pid" traefik
stop_pidfile "$RUN_DIR/moto.pid" moto_server

export DOCKER_HOST="unix://${DOCKER_SOCKET:-/var/run/docker.sock}"
if docker info >/dev/null 2>&1; then
  mapfile -t ids < <(docker ps -aq --filter label=labelfleet.managed=true)
  if ((${#ids[@]})); then
    log "removing ${#ids[@]} container(s) labelled labelfleet.managed=true"
    docker rm -f "${ids[@]}" >/dev/null
  fi
  if ((all)); then
    mapfile -t imgs < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^labelfleet/' || true)
    if ((${#imgs[@]})); then
      log "removing images: ${imgs[*]}"
      docker rmi -f "${imgs[@]}" >/dev/null
    fi
  fi
fi

# Routes written by tests into the file provider's directory point at containers removed above.
dyn="${TRAEFIK_DYNAMIC_DIR:-$CACHE/traefik/dynamic}"
[[ -d "$dyn" ]] && find "$dyn" -mindepth 1 -maxdepth 1 \( -name '*.yml' -o -name '*.yaml' -o -name '*.toml' \) -delete

if ((all)); then
  stop_pidfile "$RUN_DIR/dockerd.pid" dockerd
fi
log "down"

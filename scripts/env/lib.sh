# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for scripts/env/*.sh (sourced, not run).
# All caches and run-time state live OUTSIDE the repo (CI runs from a fresh clone every time).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENV_DIR="$REPO_ROOT/scripts/env"
CACHE="${LABELFLEET_CACHE:-/var/cache/labelfleet}"
LOG_DIR="$CACHE/logs"
RUN_DIR="$CACHE/run"              # pid files of the background services up.sh started
VENV="$CACHE/venv"
REFERENCE_VENV="$CACHE/reference-venv"   # krippendorff, crowd-kit: see reference-requirements.txt
LS_VERSION=1.23.2
BASE_IMAGE_TAG="labelfleet/label-studio-base:$LS_VERSION"

TRAEFIK_WEB_PORT="${LABELFLEET_TRAEFIK_WEB_PORT:-18080}"
TRAEFIK_API_PORT="${LABELFLEET_TRAEFIK_API_PORT:-18081}"
MOTO_PORT="${LABELFLEET_MOTO_PORT:-5055}"

# Debian's docker.io 20.10 has no buildx; the classic builder is what we use and test.
export DOCKER_BUILDKIT=0

log() { printf '[env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# sha256 of the given files' names and contents, first 12 hex digits.
content_hash() {
  local f
  for f in "$@"; do
    printf '%s\0' "${f#"$REPO_ROOT"/}"
    cat "$f"
  done | sha256sum | cut -c1-12
}

# pid_alive FILE [WORD]: true if FILE names a running process (whose command line contains WORD).
# The WORD check keeps a stale pid file (after a reboot, pids are reused) from matching, and
# from making us signal someone else's process.
pid_alive() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -z "${2:-}" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_pidfile FILE WORD: TERM the process named in FILE if its command line contains WORD
# (KILL after 20 s), then remove FILE.
stop_pidfile() {
  local file="$1" name="$2" pid i
  if pid_alive "$file" "$name"; then
    pid="$(cat "$file")"
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

# http_ok URL: true if URL answers 2xx within 3 s.
http_ok() { curl -sf -o /dev/null --max-time 3 "$1"; }

# port_busy PORT: true if something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

#!/usr/bin/env bash
# LabelFleet entrypoint: one Label Studio instance for one annotator, on PostgreSQL.
#
# Required env: POSTGRE_NAME POSTGRE_USER POSTGRE_PASSWORD POSTGRE_HOST SECRET_KEY
#               LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD LABEL_STUDIO_USER_TOKEN
# Optional env: LS_PORT (8080) LS_BIND_HOST (0.0.0.0) POSTGRE_PORT (5432)
#               LABEL_STUDIO_HOST (public URL) CSRF_TRUSTED_ORIGINS
#               FLEET_CALLBACK_URL ANNOTATOR_ID WEBHOOK_SECRET  (token report)
#               ANNOTATOR_EMAIL ANNOTATOR_PASSWORD               (annotator's own login)
# Every address comes from env so the container can run with --network host in tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for v in POSTGRE_NAME POSTGRE_USER POSTGRE_PASSWORD POSTGRE_HOST SECRET_KEY \
         LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD LABEL_STUDIO_USER_TOKEN; do
  if [[ -z "${!v:-}" ]]; then
    echo "[labelfleet] missing required environment variable $v" >&2
    exit 64
  fi
done
# LS silently ignores a token shorter than 6 characters (server._create_user).
if (( ${#LABEL_STUDIO_USER_TOKEN} < 6 || ${#LABEL_STUDIO_USER_TOKEN} > 40 )); then
  echo "[labelfleet] LABEL_STUDIO_USER_TOKEN must be 6-40 characters" >&2
  exit 64
fi

export LS_PORT="${LS_PORT:-8080}"
export POSTGRE_PORT="${POSTGRE_PORT:-5432}"
export DJANGO_DB=default                                  # without it LS silently uses SQLite
export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true          # read once, when the org is created
export LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true
# No calls home: LS otherwise asks pypi.org for its latest version at start and sends usage
# telemetry. Overridable.
export LATEST_VERSION_CHECK="${LATEST_VERSION_CHECK:-false}"
export COLLECT_ANALYTICS="${COLLECT_ANALYTICS:-false}"
# LS's get_env('PORT'/'HOST'/'USERNAME'/...) also falls back to the bare names; clear the ones
# a host environment may carry so only our flags and LABEL_STUDIO_* settings count.
unset PORT HOST USERNAME PASSWORD USER_TOKEN || true
[[ -n "${LABEL_STUDIO_HOST:-}" ]] || unset LABEL_STUDIO_HOST
[[ -n "${CSRF_TRUSTED_ORIGINS:-}" ]] || unset CSRF_TRUSTED_ORIGINS

# LS moves to the next free port (with only a printed warning) when its port is taken, and the
# fleet would then route to someone else's instance. Refuse to start instead.
if python3 - "$LS_PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
then
  echo "[labelfleet] port $LS_PORT is already in use; refusing to start" >&2
  exit 65
fi

# The reporter waits for /health/, verifies the token, ensures the annotator account and POSTs
# the token to the fleet, beside LS.
python3 "$here/labelfleet_ls.py" report &
reporter=$!

# Password and token stay in the environment (LABEL_STUDIO_PASSWORD / LABEL_STUDIO_USER_TOKEN are
# LS's fallbacks for --password / --user-token) so they don't show up in the process list.
label-studio start --no-browser \
  --internal-host "${LS_BIND_HOST:-0.0.0.0}" -p "$LS_PORT" \
  --username "$LABEL_STUDIO_USERNAME" --enable-legacy-api-token &
ls_pid=$!

# This shell stays PID 1 and forwards SIGTERM/SIGINT: Django's dev server installs no SIGTERM
# handler, so as PID 1 it would ignore `docker stop` until the 10 s kill.
trap 'kill -TERM "$ls_pid" 2>/dev/null || true' TERM INT
set +e
wait "$ls_pid"
rc=$?
while kill -0 "$ls_pid" 2>/dev/null; do wait "$ls_pid"; rc=$?; done  # wait was cut short by a trap
kill "$reporter" 2>/dev/null
exit "$rc"

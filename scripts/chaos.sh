#!/usr/bin/env bash
# The fault suite: `npm run chaos [-- vitest args, e.g. a file name]` (README "Faults").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  cat <<'HELP'
npm run chaos [-- <file filter>...]

Injects faults into fleets this suite starts itself (its own PostgreSQL cluster on another port,
its own fleet processes; all traffic to 127.0.0.1) and checks the end state, then prints a table:
fault x what was checked x result x counts. CHAOS_TABLE_FILE=<path> also writes it to a file.

Run it ALONE on the machine: some cases stop and start a dockerd and a Traefik of their own, kill
Label Studio and fleet processes they started and cut their own proxies to S3 and PostgreSQL; the
load and timing would disturb other test runs (and theirs these figures). Needs `npm run env:up`;
run it under `flock /tmp/lf-docker.lock` where other work shares the machine.
Its fast cases (test/chaos/*.fast.test.ts) also run in `npm test` (integration project).
HELP
  exit 0
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
exec npx vitest run --project chaos --reporter=default --reporter=./test/chaos/table-reporter.ts "$@"

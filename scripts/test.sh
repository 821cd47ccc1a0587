#!/usr/bin/env bash
# The whole test suite, as README says: `npm test`. Brings up the e2e environment first
# (idempotent and cached: seconds when already up), then runs unit, integration and e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
if [ "${SKIP_ENV_UP:-}" != "1" ]; then
  bash scripts/env/up.sh
fi
npx tsc --noEmit
# The fault suite (project chaos) is its own command, `npm run chaos`; its fast files run in integration.
exec npx vitest run --project unit --project integration --project e2e "$@"

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
exec npx vitest run "$@"

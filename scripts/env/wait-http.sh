#!/usr/bin/env bash
# wait-http.sh URL [TIMEOUT_SECONDS=60] [CURL_ARGS...]
# Polls URL until it answers with a 2xx status; exits 1 after TIMEOUT_SECONDS.
# Extra arguments go to curl, e.g. -H 'Host: x.test' or -H 'Authorization: Token T'.
set -euo pipefail
url="${1:?usage: wait-http.sh URL [TIMEOUT_SECONDS] [CURL_ARGS...]}"
timeout="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
deadline=$(( SECONDS + timeout ))
code=000
while (( SECONDS < deadline )); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" || true)
  [[ "$code" == 2* ]] && exit 0
  sleep 0.5
done
echo "wait-http: $url did not answer 2xx within ${timeout}s (last status $code)" >&2
exit 1

#!/usr/bin/env bash
# Creates, idempotently, the reference-tools venv ($CACHE/reference-venv) from
# reference-requirements.txt: krippendorff, crowd-kit and numpy, which the agreement tests run as a
# subprocess to compare LabelFleet's Krippendorff's alpha and Dawid-Skene with. Called by up.sh;
# runnable alone. Keyed by the requirements file and the interpreter's version, so a second run
# only checks and takes milliseconds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$CACHE" "$LOG_DIR"
py="${LABELFLEET_PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$(content_hash "$ENV_DIR/reference-requirements.txt")-$("$py" -c 'import sys; print(sys.version.split()[0])')"
if [[ -x "$REFERENCE_VENV/bin/python" && "$(cat "$REFERENCE_VENV/.labelfleet-stamp" 2>/dev/null)" == "$stamp" ]]; then
  exit 0
fi
log "creating reference venv $REFERENCE_VENV with $py (log: $LOG_DIR/pip-reference.log; takes ~1 min)"
rm -rf "$REFERENCE_VENV"
"$py" -m venv "$REFERENCE_VENV"
"$REFERENCE_VENV/bin/pip" install -q -r "$ENV_DIR/reference-requirements.txt" >>"$LOG_DIR/pip-reference.log" 2>&1 ||
  { grep -v "^WARNING: Location" "$LOG_DIR/pip-reference.log" | tail -20 >&2; die "pip install (reference venv) failed"; }
# Import once: a broken install fails here, not in the middle of a test run.
"$REFERENCE_VENV/bin/python" -c 'import krippendorff, crowdkit.aggregation, numpy' ||
  die "reference venv: krippendorff / crowd-kit do not import"
echo "$stamp" >"$REFERENCE_VENV/.labelfleet-stamp"

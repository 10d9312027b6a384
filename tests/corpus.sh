#!/usr/bin/env bash
# The corpus ratchet: `slapstore eval` on the 484 real SlapOS profiles of shared/corpus must
# agree with zc.buildout on at least as many profiles as recorded in tests/corpus-ratchet.
# Raise the recorded number when it improves; it never goes down.
#
#   bash tests/corpus.sh                 # builds the release binary, compares, checks
#   CORPUS=/path/to/corpus bash tests/corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${CORPUS:-../shared/corpus}"
if [ ! -f "$corpus/compare.py" ]; then
    echo "corpus.sh: no corpus at $corpus (set CORPUS=...)" >&2
    exit 1
fi
cargo build --release --quiet
out="$(python3 "$corpus/compare.py" target/release/slapstore --show 20)"
echo "$out"
summary="$(echo "$out" | grep '^corpus: ')"
equal="$(echo "$summary" | sed -E 's/^corpus: ([0-9]+)\/.*/\1/')"
errors="$(echo "$summary" | sed -E 's/.* ([0-9]+) errors.*/\1/')"
want="$(tr -d '[:space:]' < tests/corpus-ratchet)"
echo "corpus ratchet: $equal profiles equal (recorded minimum $want), $errors errors"
if [ "$equal" -lt "$want" ]; then
    echo "corpus.sh: FAILED: fewer profiles agree with zc.buildout than recorded ($equal < $want)" >&2
    exit 1
fi

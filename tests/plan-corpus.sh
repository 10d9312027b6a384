#!/usr/bin/env bash
# The plan ratchet: `slapstore plan` on the 484 real SlapOS profiles of shared/corpus, without a
# network (`unshare --net`: plan must never download), must succeed on at least as many profiles,
# and as many software releases (`software/*/software.cfg`), as tests/plan-ratchet records.
# Prints both counts and a histogram of the first error of each profile that does not plan, then,
# for information, how many of those that plan have unpinned inputs (branches, remote files without
# checksum): `plan` translates them with a warning, `build` refuses them until a lock file pins them
# (`docs/lock.md`; `slapstore lock` needs the network or mirrors, so the corpus has no lock files).
# Raise the recorded numbers when they improve; they never go down.
#
#   bash tests/plan-corpus.sh            # builds the release binary, plans, checks
#   CORPUS=/path/to/corpus JOBS=4 SHOW=40 bash tests/plan-corpus.sh
#   KEEP=dir bash tests/plan-corpus.sh   # keep each profile's stderr in dir
set -euo pipefail
cd "$(dirname "$0")/.."
script=plan-corpus.sh
# shellcheck source=tests/corpus-setup.sh
. tests/corpus-setup.sh

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/out"
export bin corpus work
start=$(date +%s.%N)
# one store root for all: plan only reads it
"${offline[@]}" xargs -a "$corpus/profiles.txt" -P "${JOBS:-2}" -I{} bash -c '
    name="$(printf %s "$1" | tr / _)"
    if "$bin" --root "$work/root" plan "$corpus/slapos/$1" >/dev/null 2>"$work/out/$name.err"; then
        echo "ok $1" >"$work/out/$name.rc"
    else
        echo "failed $1" >"$work/out/$name.rc"
    fi' _ {}
end=$(date +%s.%N)
[ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/out/*.err "$KEEP"/

total=$(wc -l <"$corpus/profiles.txt")
releases=$(grep -c '^software/[^/]*/software.cfg$' "$corpus/profiles.txt")
planned=$(cat "$work"/out/*.rc | grep -c '^ok ' || true)
planned_releases=$(cat "$work"/out/*.rc | grep -c '^ok software/[^/]*/software.cfg$' || true)

# The first error of each failed profile, without its section name and with every `quoted`
# value but the recipe's name blanked, cut at its first `;`: one line per kind of error.
echo "first errors of the profiles that do not plan:"
for rc in "$work"/out/*.rc; do
    read -r status _ <"$rc"
    [ "$status" = ok ] && continue
    head -n 1 "${rc%.rc}.err"
done | sed -E -e 's/^error: //' -e 's/^\[[^]]*\] //' -e 's/;.*//' \
    -e 's/^(recipe `[^`]*`)/\1\x01/' -e ':a' -e 's/\x01(.*)`[^`]*`/\x01\1…/' -e 'ta' -e 's/\x01//' \
    -e 's/ (not|from|at|with|in) …$//' | cut -c1-150 | sort | uniq -c | sort -rn | head -n "${SHOW:-30}"

printf 'plan: %d/%d profiles plan, %d/%d releases plan, %.1f s\n' \
    "$planned" "$total" "$planned_releases" "$releases" "$(echo "$end - $start" | bc)"
# a profile that plans with an unpinned input has its warning in its stderr
unpinned=0
unpinned_releases=0
for rc in "$work"/out/*.rc; do
    read -r status profile <"$rc"
    [ "$status" = ok ] && grep -q 'is an unpinned input, planned by' "${rc%.rc}.err" || continue
    unpinned=$((unpinned + 1))
    case "$profile" in software/*/software.cfg) unpinned_releases=$((unpinned_releases + 1)) ;; esac
done
printf 'of which with unpinned inputs (build refuses them until `slapstore lock` pins them): %d profiles, %d releases\n' \
    "$unpinned" "$unpinned_releases"
want_profiles=$(awk '$1 == "profiles" { print $2 }' tests/plan-ratchet)
want_releases=$(awk '$1 == "releases" { print $2 }' tests/plan-ratchet)
echo "plan ratchet: recorded minimum $want_profiles profiles, $want_releases releases"
if [ "$planned" -lt "$want_profiles" ] || [ "$planned_releases" -lt "$want_releases" ]; then
    echo "plan-corpus.sh: FAILED: fewer profiles or releases plan than recorded" >&2
    exit 1
fi

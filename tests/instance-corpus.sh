#!/usr/bin/env bash
# The instance ratchet: `slapstore instance create NAME --dry-run --software RELEASE` on the 72
# software releases of shared/corpus (`software/*/software.cfg`), without a network
# (`unshare --net`: a dry run plans the release, never builds nor downloads), must render at
# least as many releases' instance profiles as tests/instance-ratchet records. Releases with
# unpinned inputs (branches, remote files without checksum) run with `--allow-unpinned`, which
# a lock file would make unnecessary (`docs/lock.md`); a release that needs parameters or a
# software type other than `default` gets those of tests/corpus-parameters. Prints the count
# and a histogram of the first error of each release that does not render; the first line
# counts those whose release does not even plan.
# Raise the recorded number when it improves; it never goes down.
#
#   bash tests/instance-corpus.sh            # builds the release binary, runs, checks
#   CORPUS=/path/to/corpus JOBS=4 SHOW=40 bash tests/instance-corpus.sh
#   KEEP=dir bash tests/instance-corpus.sh   # keep each release's output and stderr in dir
set -euo pipefail
cd "$(dirname "$0")/.."
script=instance-corpus.sh
# shellcheck source=tests/corpus-setup.sh
. tests/corpus-setup.sh

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/out"
grep '^software/[^/]*/software.cfg$' "$corpus/profiles.txt" >"$work/releases.txt"
export bin corpus work
start=$(date +%s.%N)
# one store root for all: a dry run only reads it
"${offline[@]}" xargs -a "$work/releases.txt" -P "${JOBS:-2}" -I{} bash -c '
    name="$(printf %s "$1" | cut -d/ -f2)"
    # the request a real user makes of a release that needs one (tests/corpus-parameters)
    request=()
    given=tests/corpus-parameters/$name
    [ -f "$given.json" ] && request+=(--parameters "$given.json")
    [ -f "$given.software-type" ] && request+=(--software-type "$(cat "$given.software-type")")
    for pinned in "" --allow-unpinned; do
        if "$bin" --root "$work/root" instance create "dry-$name" --dry-run $pinned "${request[@]}" \
            --software "$corpus/slapos/$1" >"$work/out/$name.out" 2>"$work/out/$name.err"; then
            echo ok >"$work/out/$name.rc"
            exit 0
        fi
        # plan accepts unpinned inputs (with a warning), an instance does not: a release
        # whose branches or files without checksum no lock pins is judged by the second run
    done
    if "$bin" --root "$work/root" plan --allow-unpinned "$corpus/slapos/$1" >/dev/null 2>&1; then
        echo failed >"$work/out/$name.rc"
    else
        echo unplanned >"$work/out/$name.rc"
    fi' _ {}
end=$(date +%s.%N)
[ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/out/* "$KEEP"/

total=$(wc -l <"$work/releases.txt")
rendered=$(cat "$work"/out/*.rc | grep -c '^ok$' || true)
unplanned=$(cat "$work"/out/*.rc | grep -c '^unplanned$' || true)

# The first error of each release that plans but does not render, without its section name and
# with every `quoted` value but the recipe's name blanked, cut at its first `;`.
echo "first errors of the releases that plan but do not render:"
for rc in "$work"/out/*.rc; do
    [ "$(cat "$rc")" = failed ] || continue
    grep -m1 '^error' "${rc%.rc}.err" || head -n 1 "${rc%.rc}.err"
done | sed -E -e 's/^error: //' -e 's/^\[[^]]*\] //' -e 's/;.*//' \
    -e 's/^(recipe `[^`]*`)/\1\x01/' -e ':a' -e 's/\x01(.*)`[^`]*`/\x01\1…/' -e 'ta' -e 's/\x01//' \
    -e 's/ (not|from|at|with|in) …$//' | cut -c1-150 | sort | uniq -c | sort -rn | head -n "${SHOW:-30}"

printf 'instance --dry-run: %d/%d releases render (%d do not plan), %.1f s\n' \
    "$rendered" "$total" "$unplanned" "$(echo "$end - $start" | bc)"
want=$(awk '$1 == "releases" { print $2 }' tests/instance-ratchet)
echo "instance ratchet: recorded minimum $want releases"
if [ "$rendered" -lt "$want" ]; then
    echo "instance-corpus.sh: FAILED: fewer releases render than recorded" >&2
    exit 1
fi

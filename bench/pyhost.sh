#!/usr/bin/env bash
# The cost of build-time Python: CPU time (user + system, the build and every process it
# waited for: less noisy than wall time on a loaded machine) of building examples/patched-c
# with 0, 1 and 3 cmmi Python hooks, and of a `script` part (install code that writes a file),
# each the median of N fresh builds. The hook cost is the difference to 0 hooks.
#
#   bash bench/pyhost.sh [BINARY] [N]     # default: target/release/slapstore, 9 runs
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-target/release/slapstore}")"
n="${2:-9}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp examples/patched-c/{greet-1.0.tar.gz,fix-greeting.patch} "$work"/
printf 'def h(options, buildout, environment):\n    pass\n' >"$work/hooks.py"
md5=$(md5sum "$work/hooks.py" | cut -d' ' -f1)
hook() { echo "$1 = \${:_profile_base_location_}/hooks.py#$md5:h"; }
cp examples/patched-c/software.cfg "$work/hooks0.cfg"
{ cat examples/patched-c/software.cfg; hook post-make-hook; } >"$work/hooks1.cfg"
{ cat examples/patched-c/software.cfg; hook pre-configure-hook; hook pre-make-hook; hook post-make-hook; } >"$work/hooks3.cfg"
printf '[buildout]\nparts = s\n[s]\nrecipe = slapos.recipe.build\ninstall =\n  open(location, "w").write("x")\n' >"$work/script.cfg"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for profile in hooks0 hooks1 hooks3 script; do
    if ! "$bin" --root "$work/root" plan "$work/$profile.cfg" >/dev/null 2>&1; then
        echo "$profile: not buildable by this binary"
        continue
    fi
    for _ in $(seq "$n"); do
        rm -rf "$work/root"
        /usr/bin/time -f '%U %S' -o "$work/time" "$bin" --root "$work/root" build "$work/$profile.cfg" >/dev/null 2>"$work/err" \
            || { cat "$work/err" >&2; exit 1; }
        awk '{printf "%d\n", ($1 + $2) * 1000}' "$work/time"
    done | median | xargs printf '%s: %s ms CPU\n' "$profile"
done

#!/usr/bin/env bash
# Side-by-side benchmark of profile evaluation: `slapstore eval` against zc.buildout (the
# oracle: zc.buildout 3.0.1 with the SlapOS fork's rules, real recipe initialisation) on the
# same profile, runs alternated, on this machine. Prints the median wall time of each, the
# ratio, and peak memory (max RSS).
#
#   bash bench/eval.sh                                  # software/erp5/software.cfg, 7 runs each
#   RUNS=11 PROFILE=software/kvm/software.cfg bash bench/eval.sh
#
# Needs ../shared (corpus and oracle); creates the oracle's venvs if missing (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${SHARED:-../shared}"
profile="$shared/corpus/slapos/${PROFILE:-software/erp5/software.cfg}"
runs="${RUNS:-7}"
oracle_python="${ORACLE_PYTHON:-/tmp/slapstore-oracle/venv-3.0.1/bin/python}"
# the interpreter profile code runs with: the real binary, not a shell shim (pyenv)
host_python="$(python3 -c 'import sys; print(sys.executable)')"

[ -x "$oracle_python" ] || bash "$shared/oracle/setup.sh" >/dev/null
cargo build --release --quiet
bin="$PWD/target/release/slapstore"

measure() {  # measure CMD... -> "seconds max_rss_kb"
    local t
    t="$( { /usr/bin/time -f '%e %M' "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -n 1)"
    echo "$t"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

s_times=(); s_mem=(); o_times=(); o_mem=()
for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$bin" eval --json --python "$host_python" "$profile" >/dev/null
    end=$(date +%s.%N)
    s_times+=("$(echo "$end - $start" | bc)")
    s_mem+=("$(measure "$bin" eval --json --python "$host_python" "$profile" | cut -d' ' -f2)")
    start=$(date +%s.%N)
    "$oracle_python" "$shared/oracle/resolve.py" --slapos "$profile" >/dev/null 2>&1
    end=$(date +%s.%N)
    o_times+=("$(echo "$end - $start" | bc)")
    o_mem+=("$(measure "$oracle_python" "$shared/oracle/resolve.py" --slapos "$profile" | cut -d' ' -f2)")
done
s_med=$(printf '%s\n' "${s_times[@]}" | median)
o_med=$(printf '%s\n' "${o_times[@]}" | median)
s_rss=$(printf '%s\n' "${s_mem[@]}" | median)
o_rss=$(printf '%s\n' "${o_mem[@]}" | median)
printf 'profile: %s (%d runs each, alternated)\n' "${PROFILE:-software/erp5/software.cfg}" "$runs"
printf 'zc.buildout 3.0.1 (oracle): median %.3f s, max RSS %d MiB\n' "$o_med" "$((o_rss / 1024))"
printf 'slapstore eval:             median %.4f s, max RSS %d MiB\n' "$s_med" "$((s_rss / 1024))"
printf 'ratio: slapstore is %.0fx faster\n' "$(echo "$o_med / $s_med" | bc -l)"

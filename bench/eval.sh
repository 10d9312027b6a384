#!/usr/bin/env bash
# Side-by-side benchmark of profile evaluation: `slapstore eval --json` against zc.buildout (the
# oracle: zc.buildout 3.0.1 with the SlapOS fork's rules and real recipe initialisation, what
# `shared/corpus/expected` was made with) on the same profile, runs alternated, on this machine.
# Prints the median wall time and peak memory (max RSS) of each, and the ratio. Each timed run
# follows an untimed run of the same tool, so that both are measured warm.
#
#   bash bench/eval.sh                                   # software/erp5/software.cfg, 7 runs each
#   RUNS=11 PROFILE=software/kvm/software.cfg bash bench/eval.sh
#
# Needs ../shared (corpus and oracle); creates the oracle's venvs if missing (PyPI, ~1 min).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${SHARED:-../shared}"
profile="$shared/corpus/slapos/${PROFILE:-software/erp5/software.cfg}"
oracle_python="${ORACLE_PYTHON:-/tmp/slapstore-oracle/venv-3.0.1/bin/python}"
[ -x "$oracle_python" ] || bash "$shared/oracle/setup.sh" >/dev/null
cargo build --release --quiet

# profile code runs with the host's python3, as it does inside the oracle; name the real
# interpreter rather than a shell shim (pyenv), whose start-up would be measured too
host_python="$(python3 -c 'import sys; print(sys.executable)')"

RUNS="${RUNS:-7}" python3 - "$PWD/target/release/slapstore" "$host_python" "$oracle_python" \
    "$shared/oracle/resolve.py" "$profile" <<'PY'
import os, statistics, subprocess, sys, time

slapstore, host_python, oracle_python, resolve, profile = sys.argv[1:]
runs = int(os.environ["RUNS"])
commands = {
    "zc.buildout 3.0.1 (oracle)": [oracle_python, resolve, "--slapos", profile],
    "slapstore eval": [slapstore, "eval", "--json", "--python", host_python, profile],
}

def run(cmd):
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("failed: %s" % " ".join(cmd))
    return elapsed, usage.ru_maxrss / 1024

results = {name: [] for name in commands}
for _ in range(runs):  # alternated, so that both see the same machine
    for name, cmd in commands.items():
        run(cmd)  # untimed: the first run after the other tool's pays for its cache misses
        results[name].append(run(cmd))

print("profile: %s, %d runs each, alternated" % (os.path.relpath(profile), runs))
medians = {}
for name, samples in results.items():
    times = [t for t, _ in samples]
    medians[name] = statistics.median(times)
    print("  %-28s median %8.1f ms  (min %.1f, max %.1f)  max RSS %5.1f MiB" % (
        name, medians[name] * 1000, min(times) * 1000, max(times) * 1000,
        max(m for _, m in samples)))
o, s = medians.values()
print("ratio: slapstore eval is %.0fx faster than zc.buildout" % (o / s))
PY

#!/usr/bin/env bash
# Side-by-side benchmark of profile evaluation: `slapstore eval --json` against zc.buildout (the
# oracle: zc.buildout 3.0.1 with the SlapOS fork's rules and real recipe initialisation, what
# `shared/corpus/expected` was made with) on the same profile, then `plan` of a real release
# without and with the cache of evaluations (`SLAPSTORE_EVAL_CACHE=0`, then warm), and a no-op
# `build` of a built profile without and with it. Runs alternated, on this machine. Prints the
# median wall time and peak memory (max RSS) of each, and the ratio. Each timed run follows an
# untimed run of the same command, so that all are measured warm.
#
#   bash bench/eval.sh                                   # software/erp5/software.cfg, 7 runs each
#   RUNS=11 PROFILE=software/kvm/software.cfg bash bench/eval.sh
#   PLAN=software/erp5/software.cfg bash bench/eval.sh   # the release planned (default: erp5 if
#                                                        # it plans, else software/simpleran)
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

bin="$PWD/target/release/slapstore"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# the release to plan: erp5 once it plans (with --allow-unpinned), else the largest that does
plan="$shared/corpus/slapos/${PLAN:-software/erp5/software.cfg}"
if [ -z "${PLAN:-}" ] && ! "$bin" --root "$root" plan --allow-unpinned --python "$host_python" \
    "$plan" >/dev/null 2>&1; then
    echo "(software/erp5 does not plan yet: planning software/simpleran, the largest release that does)"
    plan="$shared/corpus/slapos/software/simpleran/software.cfg"
fi
# a built profile, for the no-op build
built=examples/jinja-instance/software.cfg
"$bin" --root "$root" build --quiet "$built" >/dev/null

RUNS="${RUNS:-7}" python3 - "$bin" "$host_python" "$oracle_python" \
    "$shared/oracle/resolve.py" "$profile" "$root" "$plan" "$built" <<'PY'
import os, statistics, subprocess, sys, time

slapstore, host_python, oracle_python, resolve, profile, root, plan, built = sys.argv[1:]
runs = int(os.environ["RUNS"])
rel = lambda p: os.path.relpath(p, os.path.join(os.path.dirname(resolve), "../corpus/slapos"))
on_root = [slapstore, "--root", root]
planned = on_root + ["plan", "--allow-unpinned", "--python", host_python, plan]
noop = on_root + ["build", "--python", host_python, built]
commands = {
    "zc.buildout 3.0.1 (oracle)": [oracle_python, resolve, "--slapos", profile],
    "slapstore eval": [slapstore, "eval", "--json", "--python", host_python, profile],
    "plan %s, no cache" % rel(plan): ["env", "SLAPSTORE_EVAL_CACHE=0"] + planned,
    "plan %s, cached" % rel(plan): planned,
    "no-op build %s, no cache" % os.path.basename(os.path.dirname(built)):
        ["env", "SLAPSTORE_EVAL_CACHE=0"] + noop,
    "no-op build %s, cached" % os.path.basename(os.path.dirname(built)): noop,
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
    print("  %-44s median %8.1f ms  (min %.1f, max %.1f)  max RSS %5.1f MiB" % (
        name, medians[name] * 1000, min(times) * 1000, max(times) * 1000,
        max(m for _, m in samples)))
o, s = list(medians.values())[:2]
print("ratio: slapstore eval is %.0fx faster than zc.buildout" % (o / s))
PY

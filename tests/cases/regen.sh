#!/usr/bin/env bash
# Regenerate the golden files of tests/cases/<case>/ from the zc.buildout oracle
# (zc.buildout 3.0.1 + SlapOS fork emulation, `resolve.py --slapos --meta`).
#
#   tests/cases/regen.sh            # every case
#   tests/cases/regen.sh CASE...    # only these cases (directory names)
#
# Environment: ORACLE_PYTHON (python of the oracle venv), ORACLE (path of resolve.py).
# Writes CASE/expected.json (exit 0) or CASE/expected.err (exit 1 or 2) and removes the other one.
# Never edit those files by hand. `expect-error` files are hand-written and left alone.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ORACLE_PYTHON="${ORACLE_PYTHON:-/tmp/slapstore-oracle/venv-3.0.1/bin/python}"
ORACLE="${ORACLE:-$(dirname "$0")/../../../shared/oracle/resolve.py}"
ORACLE="$(cd "$(dirname "$ORACLE")" && pwd)/$(basename "$ORACLE")"

if [ ! -x "$ORACLE_PYTHON" ]; then
    echo "regen.sh: oracle python $ORACLE_PYTHON missing (run shared/oracle/setup.sh)" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    cases=("$@")
else
    cases=()
    for d in "$here"/*/; do
        [ -f "$d/buildout.cfg" ] && cases+=("$(basename "$d")")
    done
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for c in "${cases[@]}"; do
    c="${c%/}"
    dir="$here/$c"
    if [ ! -f "$dir/buildout.cfg" ]; then
        echo "regen.sh: no such case: $c" >&2
        exit 1
    fi
    flags=()
    if [ -f "$dir/flags" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            [ -z "$line" ] && continue
            case "$line" in
                --all-sections) flags+=("$line") ;;
                *) echo "regen.sh: $c/flags: unsupported flag '$line'" >&2; exit 1 ;;
            esac
        done < "$dir/flags"
    fi
    args=()
    if [ -f "$dir/args" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            [ -z "$line" ] && continue
            args+=("$line")
        done < "$dir/args"
    fi
    rc=0
    (cd "$dir" && "$ORACLE_PYTHON" "$ORACLE" --slapos --meta ${flags[@]+"${flags[@]}"} \
        "$dir/buildout.cfg" buildout:executable=@PYTHON@ ${args[@]+"${args[@]}"}) \
        >"$tmp/out" 2>"$tmp/err" || rc=$?
    case "$rc" in
        0|1|2) ;;
        *) echo "regen.sh: $c: oracle exited with $rc" >&2; cat "$tmp/err" >&2; exit 1 ;;
    esac
    CASE_DIR="$dir" RC="$rc" python3 - "$tmp/out" "$tmp/err" <<'PY'
import json, os, sys

case_dir = os.environ["CASE_DIR"].rstrip("/")
rc = int(os.environ["RC"])
dirs = sorted({case_dir, os.path.abspath(case_dir), os.path.realpath(case_dir)},
              key=len, reverse=True)

def scrub(text):
    for d in dirs:
        text = text.replace(d, "@CASE@")
    return text

def scrub_obj(o):
    if isinstance(o, str):
        return scrub(o)
    if isinstance(o, list):
        return [scrub_obj(x) for x in o]
    if isinstance(o, dict):
        return {scrub(k): scrub_obj(v) for k, v in o.items()}
    return o

out = open(sys.argv[1]).read()
err = open(sys.argv[2]).read().splitlines()
json_path = os.path.join(case_dir, "expected.json")
err_path = os.path.join(case_dir, "expected.err")

if rc == 0:
    meta = json.loads(out)
    reduced = scrub_obj({"install_parts": meta["install_parts"], "sections": meta["sections"]})
    with open(json_path, "w") as f:
        f.write(json.dumps(reduced, sort_keys=True, indent=1) + "\n")
    if os.path.exists(err_path):
        os.remove(err_path)
    sys.exit(0)

if rc == 1:
    # buildout's UserError text: from the first "Error: " line to the end, minus "While:" notes.
    start = next(i for i, l in enumerate(err) if l.startswith("Error: "))
    msg = []
    skipping = False
    for l in err[start:]:
        if l.startswith("While:"):
            skipping = True
            continue
        if skipping and (l.startswith(" ") or not l):
            continue
        skipping = False
        msg.append(l)
else:
    # internal error: the exception lines that end the traceback (type + message, which may
    # span several lines, e.g. ParsingError), i.e. from the first non-indented line after the
    # last '  File "..."' frame.
    last_frame = max(i for i, l in enumerate(err) if l.startswith("  File "))
    start = next(i for i in range(last_frame + 1, len(err))
                 if err[i] and not err[i].startswith(" "))
    msg = err[start:]
while msg and not msg[-1].strip():
    msg.pop()
with open(err_path, "w") as f:
    f.write("exit %d\n" % rc)
    f.write(scrub("\n".join(msg)) + "\n")
if os.path.exists(json_path):
    os.remove(json_path)
PY
    echo "$c: exit $rc"
done

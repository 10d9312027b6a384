#!/usr/bin/env bash
# eggs.sh — side-by-side benchmark of egg installs: zc.buildout 3.0.1 (the oracle's venv,
# ../shared/oracle/setup.sh) against slapstore, on one set of distributions pinned as
# software/helloworld's `[versions]` (stack/slapos.cfg) pins them, `:whl` suffixes included.
# Not part of the test suite; needs the package index (PyPI).
#
#   bash bench/eggs.sh                  # a few minutes on a 2-vCPU VM
#   REPS=3 bash bench/eggs.sh
#
# zc.buildout 3.0.1 installs a pinned version from its wheel when the index has one (all of
# this set); the SlapOS fork, and slapstore, build a pin without `:whl` from its sdist. So
# slapstore runs twice: `whl`, every pin given `:whl` (the same files as buildout: the
# installers compared), and `sdist`, the pins as helloworld writes them (17 of the 27 built
# from their sdists; the cache of built wheels serves the `cache` case).
#
# Each tool installs the set into a fresh directory (buildout: its own eggs-directory and
# download-cache; slapstore: a fresh --root), three ways, alternated tool by tool:
#   cold   nothing cached: everything resolved and fetched from the index
#   cache  a fresh install with the download cache of a cold run kept (buildout's
#          download-cache; slapstore's <root>/var/cache, copied), eggs/store empty
#   noop   the same command again in the same directory
# Medians over REPS, and the ratios buildout/slapstore.
#
# Knobs (env): BENCH_DIR=/tmp/slapstore-bench-eggs REPS=1 KEEP=0
#   ORACLE=/tmp/slapstore-oracle/venv-3.0.1 (made by ../shared/oracle/setup.sh if missing)
#   SLAPSTORE=<binary> (default: `cargo build --release`, then target/release/slapstore)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-eggs}
REPS=${REPS:-1}
ORACLE=${ORACLE:-/tmp/slapstore-oracle/venv-3.0.1}
if [ -z "${SLAPSTORE:-}" ]; then
    (cd "$here" && cargo build --release -q)
    SLAPSTORE=$here/target/release/slapstore
fi
if [ ! -x "$ORACLE/bin/buildout" ]; then
    ONLY=3.0.1 bash "$here/../shared/oracle/setup.sh" >/dev/null
fi
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"

# the set: helloworld's pins of these distributions (`name = version[:whl]`)
PINS='Jinja2 = 3.1.6:whl
MarkupSafe = 2.1.3
requests = 2.32.5
certifi = 2025.11.12
idna = 3.11:whl
urllib3 = 2.6.3:whl
charset-normalizer = 3.4.4
Flask = 3.0.0:whl
Werkzeug = 3.1.3:whl
itsdangerous = 2.1.2
click = 8.1.3
blinker = 1.6.3:whl
psutil = 7.1.3
PyYAML = 6.0.3
zope.interface = 7.2
supervisor = 4.3.0
six = 1.17.0
python-dateutil = 2.9.0.post0:whl
meld3 = 1.0.2
netaddr = 1.3.0
attrs = 25.4.0:whl
distro = 1.7.0
uritemplate = 4.1.1
pycparser = 2.23
setuptools = 67.8.0'
EGGS=$(printf '%s\n' "$PINS" | sed -n 's/ = .*//p' | grep -v '^setuptools$' | sed 's/^/  /')

# zc.buildout 3.0.1 knows no `:whl`: the same pins without it; `sdist`: only the files of
# $BENCH_DIR/files (find-links), with an index that has nothing
buildout_cfg() {  # DIR [sdist]
    mkdir -p "$1"
    local sources=
    if [ "${2:-}" = sdist ]; then
        mkdir -p "$BENCH_DIR/empty-index"
        sources="find-links = $BENCH_DIR/files
index = file://$BENCH_DIR/empty-index/"
    fi
    cat >"$1/buildout.cfg" <<EOF
[buildout]
parts = eggs
newest = false
$sources
eggs-directory = $1/eggs
download-cache = $1/download-cache
develop-eggs-directory = $1/develop-eggs
bin-directory = $1/bin
parts-directory = $1/parts
versions = versions
[versions]
$(printf '%s\n' "$PINS" | sed 's/:whl$//')
zc.buildout = 3.0.1
zc.recipe.egg = 2.0.7
[eggs]
recipe = zc.recipe.egg
eggs =
$EGGS
EOF
}

slapstore_cfg() {  # DIR whl|sdist
    mkdir -p "$1"
    local pins=$PINS
    if [ "$2" = whl ]; then
        pins=$(printf '%s\n' "$PINS" | sed 's/:whl$//; s/$/:whl/')
    fi
    cat >"$1/software.cfg" <<EOF
[buildout]
parts = eggs
[versions]
$pins
[eggs]
recipe = zc.recipe.egg
eggs =
$EGGS
EOF
}

# the files of buildout's `sdist` run: what slapstore's fetches, the sdist of a plain pin and
# the wheel (py3, any platform) of a `:whl` one, found through the index's simple API in JSON
# (PEP 691; `pip download` would build each sdist's metadata, minutes under load)
fetch_files() {
    mkdir -p "$BENCH_DIR/files"
    printf '%s\n' "$PINS" "zc.recipe.egg = 2.0.7" | "$ORACLE/bin/python" -c '
import json, re, sys, urllib.request
def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()
dest = sys.argv[1]
for line in sys.stdin:
    name, _, version = line.strip().partition(" = ")
    wheel = version.endswith(":whl")
    version = version.removesuffix(":whl")
    request = urllib.request.Request(
        "https://pypi.org/simple/%s/" % norm(name),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request) as r:
        files = json.load(r)["files"]
    def wanted(filename):
        if wheel:
            parts = filename.split("-")
            return filename.endswith("-none-any.whl") and parts[1] == version and norm(parts[0]) == norm(name)
        for ext in (".tar.gz", ".zip"):
            if filename.endswith(ext):
                n, _, v = filename[: -len(ext)].rpartition("-")
                return v == version and norm(n) == norm(name)
        return False
    ok = [f for f in files if wanted(f["filename"])]
    if not ok:
        sys.exit("eggs.sh: no %s of %s %s on the index" % ("wheel" if wheel else "sdist", name, version))
    urllib.request.urlretrieve(ok[0]["url"], dest + "/" + ok[0]["filename"])
' "$BENCH_DIR/files"
}
fetch_files

now() { date +%s.%N; }
declare -A times
run_timed() {  # KEY COMMAND...: appends the seconds it took to times[KEY]
    local key=$1; shift
    sync
    local t0 t1
    t0=$(now)
    if ! "$@" >"$BENCH_DIR/last.log" 2>&1; then
        echo "FAILED: $*" >&2
        tail -30 "$BENCH_DIR/last.log" >&2
        exit 1
    fi
    t1=$(now)
    times[$key]="${times[$key]:-} $(echo "$t1 - $t0" | bc)"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for rep in $(seq "$REPS"); do
    b=$BENCH_DIR/buildout-$rep
    buildout_cfg "$b/cold"
    run_timed buildout-cold "$ORACLE/bin/buildout" -c "$b/cold/buildout.cfg"
    buildout_cfg "$b/sdist" sdist
    run_timed buildout-sdist-cold "$ORACLE/bin/buildout" -c "$b/sdist/buildout.cfg"
    for mode in whl sdist; do
        s=$BENCH_DIR/slapstore-$mode-$rep
        slapstore_cfg "$s/cold" $mode
        run_timed $mode-cold "$SLAPSTORE" --root "$s/cold/root" build "$s/cold/software.cfg"
    done
    # a fresh install, the download cache of the cold run kept
    buildout_cfg "$b/cache"
    cp -a "$b/cold/download-cache" "$b/cache/download-cache"
    run_timed buildout-cache "$ORACLE/bin/buildout" -c "$b/cache/buildout.cfg"
    for mode in whl sdist; do
        s=$BENCH_DIR/slapstore-$mode-$rep
        slapstore_cfg "$s/cache" $mode
        mkdir -p "$s/cache/root/var"
        cp -a "$s/cold/root/var/cache" "$s/cache/root/var/cache"
        run_timed $mode-cache "$SLAPSTORE" --root "$s/cache/root" build "$s/cache/software.cfg"
    done
    run_timed buildout-noop "$ORACLE/bin/buildout" -c "$b/cache/buildout.cfg"
    run_timed buildout-sdist-noop "$ORACLE/bin/buildout" -c "$b/sdist/buildout.cfg"
    for mode in whl sdist; do
        s=$BENCH_DIR/slapstore-$mode-$rep
        run_timed $mode-noop "$SLAPSTORE" --root "$s/cache/root" build "$s/cache/software.cfg"
    done
done

n=$(printf '%s\n' "$EGGS" | wc -l)
installed=$(find "$BENCH_DIR"/slapstore-whl-1/cold/root/store -maxdepth 1 -name '*-*' | wc -l)
echo "egg installs: $n requested distributions (their closure: $installed store paths), REPS=$REPS, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %10s %14s %7s %15s %16s %7s\n' case buildout 'slapstore whl' ratio 'buildout sdist' 'slapstore sdist' ratio
for case in cold cache noop; do
    bt=$(echo "${times[buildout-$case]}" | median)
    wt=$(echo "${times[whl-$case]}" | median)
    # buildout's sdist run has no download cache case: its find-links are local files already
    bs_case=$case
    [ "$case" = cache ] && bs_case=cold
    bst=$(echo "${times[buildout-sdist-$bs_case]}" | median)
    st=$(echo "${times[sdist-$case]}" | median)
    printf '%-8s %9.3fs %13.3fs %6.1fx %14.3fs %15.3fs %6.1fx\n' "$case" "$bt" "$wt" \
        "$(echo "$bt / $wt" | bc -l)" "$bst" "$st" "$(echo "$bst / $st" | bc -l)"
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR"

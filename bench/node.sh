#!/usr/bin/env bash
# slapgrid (`slapos node software` / `slapos node instance` of slapos.core 1.22.1) against
# `slapstore node`, each serving its own slapproxy (same slapos.core), on the same release
# (bench/node-release) and N partitions:
#   install  the release supplied, one software pass (slapgrid: buildout, the recipe egg fetched
#            from the package index; slapstore: a build)
#   deploy   N instances requested, one instance pass (each one's service started)
#   no-op    the next pass, nothing changed (median of REPS; slapgrid's and slapstore's passes
#            alternate, so that the load of the machine weighs on both alike)
#
#   bash bench/node.sh                 # N=10 REPS=5
#   N=3 REPS=3 bash bench/node.sh
#
# Runs as root (slapgrid drops privileges to the partitions' owner, here `nobody`, so its venv
# is made from /usr/bin/python3 into $BENCH_DIR/venv, a place `nobody` may read; made when
# missing, from the package index). Ports 23000+ serve slapgrid's instances, 23100+ slapstore's
# (its copy of the release differs from slapgrid's in that number only): both run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
REPS=${REPS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-node}
[ "$(id -u)" -eq 0 ] || { echo "bench/node.sh runs as root (slapgrid's privilege drop)" >&2; exit 1; }
cargo build --release --quiet
mkdir -p "$BENCH_DIR"
chmod 755 "$BENCH_DIR"
S="$BENCH_DIR/slapstore.bin"; cp target/release/slapstore "$S"
V=${VENV:-$BENCH_DIR/venv}
if [ ! -x "$V/bin/slapos" ]; then
    echo "making the slapos.core 1.22.1 venv in $V" >&2
    /usr/bin/python3 -m venv "$V"
    "$V/bin/pip" install -q --disable-pip-version-check slapos.core==1.22.1
fi
# the recipe the release uses, importable by slapgrid's buildouts: an instance buildout runs
# offline and, with the setuptools of today, does not see the software's `eggs/` in that mode
"$V/bin/python" -c 'import slapos.recipe.template' 2>/dev/null ||
    "$V/bin/pip" install -q --disable-pip-version-check slapos.recipe.template
# slapgrid runs its `buildout` with `python -S`: a script that names its own path, as the
# buildout-made one of a SlapOS node does
site=$("$V/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '#!%s -S\nimport sys\nsys.path[0:0] = [%s]\nimport zc.buildout.buildout\nsys.exit(zc.buildout.buildout.main())\n' \
    "$V/bin/python" "'$site'" > "$BENCH_DIR/buildout"
chmod 755 "$BENCH_DIR/buildout"
release="$BENCH_DIR/release/software.cfg"
rm -rf "$BENCH_DIR/release"; cp -r bench/node-release "$BENCH_DIR/release"
# the zc.buildout of the package index has no `_profile_base_location_` (SlapOS's fork has)
sed -i "s|\${:_profile_base_location_}|$BENCH_DIR/release|" "$release"
# slapstore's copy: its services on 23100 + N
s_release="$BENCH_DIR/release-s/software.cfg"
rm -rf "$BENCH_DIR/release-s"; cp -r bench/node-release "$BENCH_DIR/release-s"
sed -i 's/23000 + n/23100 + n/' "$BENCH_DIR/release-s/instance.cfg.in"
grep -q '23100 + n' "$BENCH_DIR/release-s/instance.cfg.in" || { echo "no port base in the release" >&2; exit 1; }
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}'; }
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$BENCH_DIR"/g/inst/var/run/supervisord.pid "$BENCH_DIR"/s/root/var/supervisor/supervisord.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start_proxy DIR PORT COMPUTER: a slapproxy serving DIR/proxy.db; DIR/slapos.cfg for slapos
start_proxy() {
    local dir=$1 port=$2 computer=$3
    cat > "$dir/slapos.cfg" <<EOF
[slapos]
master_url = http://127.0.0.1:$port
computer_id = $computer
software_root = $dir/soft
instance_root = $dir/inst
buildout = $BENCH_DIR/buildout
[slapproxy]
host = 127.0.0.1
port = $port
database_uri = $dir/proxy.db
[slapconsole]
EOF
    "$V/bin/slapos" proxy start --cfg "$dir/slapos.cfg" > "$dir/proxy.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "slapproxy on $port did not start" >&2; exit 1
}

# request PROXY_PORT COMPUTER FIRST_SERVICE_PORT RELEASE: N instances web0.. of the release
request() {
    "$V/bin/python" - "$1" "$2" "$4" "$N" "$3" <<'EOF'
import sys, slapos.slap
url, computer, release, n, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
slap = slapos.slap.slap()
slap.initializeConnection('http://127.0.0.1:%s' % url)
order = slap.registerOpenOrder()
for i in range(n):
    order.request(release, 'web%d' % i, partition_parameter_kw={'port': str(port + i), 'greeting': 'Hi'},
                  filter_kw={'computer_guid': computer}, state='started')
EOF
}

# served FIRST_PORT: waits until the N services answer
served() {
    for i in $(seq 0 $((N - 1))); do
        for _ in $(seq 150); do
            curl -sf "http://127.0.0.1:$(($1 + i))/" > /dev/null 2>&1 && continue 2
            sleep 0.1
        done
        echo "the service on port $(($1 + i)) never answered" >&2; exit 1
    done
}

# ---- slapgrid
G="$BENCH_DIR/g"; rm -rf "$G"; mkdir -p "$G/soft" "$G/inst"
for i in $(seq 0 $((N - 1))); do mkdir -p "$G/inst/slappart$i"; done
chown -R nobody:nogroup "$G/soft" "$G/inst"
chmod 750 "$G"/inst/slappart*
chmod 755 "$G"
start_proxy "$G" 23990 COMP-G
# what `slapos node format` registers (it needs network interfaces of its own to make them)
"$V/bin/python" - "$N" <<'EOF'
import sys, requests
from slapos.util import dumps
n = int(sys.argv[1])
partitions = [{'reference': 'slappart%d' % i, 'tap': {'name': 'slappart%d' % i},
               'address_list': [{'addr': '127.0.0.1', 'netmask': '255.0.0.0'}]} for i in range(n)]
xml = dumps({'reference': 'COMP-G', 'address': '127.0.0.1', 'netmask': '255.0.0.0', 'partition_list': partitions})
requests.post('http://127.0.0.1:23990/loadComputerConfigurationFromXML', data={'xml': xml}).raise_for_status()
EOF
grid() { "$V/bin/slapos" node "$1" --cfg "$G/slapos.cfg" --now --pidfile "$G/$1.pid" > "$G/$1.log" 2>&1; }
"$V/bin/slapos" supply "$release" COMP-G --cfg "$G/slapos.cfg" > /dev/null 2>&1
echo "slapgrid: install" >&2
a=$(now); grid software; b=$(now); g_install=$(echo "$b - $a" | bc)
request 23990 COMP-G 23000 "$release"
echo "slapgrid: deploy" >&2
a=$(now); grid instance || true; b=$(now); g_deploy=$(echo "$b - $a" | bc)
served 23000

# ---- slapstore node
D="$BENCH_DIR/s"; rm -rf "$D"; mkdir -p "$D"
start_proxy "$D" 23991 COMP-S
node() { "$S" --root "$D/root" -q node --master http://127.0.0.1:23991 --computer COMP-S --partition-count "$N" > "$D/node.log" 2>&1; }
node  # format
"$V/bin/slapos" supply "$s_release" COMP-S --cfg "$D/slapos.cfg" > /dev/null 2>&1
echo "slapstore: install, deploy" >&2
a=$(now); node; b=$(now); s_install=$(echo "$b - $a" | bc)
request 23991 COMP-S 23100 "$s_release"
a=$(now); node; b=$(now); s_deploy=$(echo "$b - $a" | bc)
served 23100

echo "no-op passes, alternated" >&2
g_noop=(); s_noop=()
for _ in $(seq "$REPS"); do
    a=$(now); grid instance || true; b=$(now); g_noop+=("$(echo "$b - $a" | bc)")
    a=$(now); node; b=$(now); s_noop+=("$(echo "$b - $a" | bc)")
done

gn=$(printf '%s\n' "${g_noop[@]}" | median); sn=$(printf '%s\n' "${s_noop[@]}" | median)
printf '%-28s %10s %10s %8s\n' "N=$N partitions" slapgrid slapstore ratio
printf '%-28s %10.3f %10.3f %7.1fx\n' "install the release (s)" "$g_install" "$s_install" "$(echo "$g_install / $s_install" | bc -l)"
printf '%-28s %10.3f %10.3f %7.1fx\n' "deploy and start $N (s)" "$g_deploy" "$s_deploy" "$(echo "$g_deploy / $s_deploy" | bc -l)"
printf '%-28s %10.3f %10.3f %7.1fx\n' "no-op pass, median (s)" "$gn" "$sn" "$(echo "$gn / $sn" | bc -l)"

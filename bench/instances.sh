#!/usr/bin/env bash
# Instances, side by side with Nix 2.8 where Nix has an equivalent:
#  1. creating 1,000 instances of one release in one command (goal: under 5 s on 2 cores), and
#     the disk each instance costs beyond its data (goal: 32 KiB or less);
#  2. rollback latency: `slapstore instance rollback` against `nix-env --profile P --rollback`,
#     alternated, on throwaway stores (Nix isolated as ../shared/anchors/nixbench does);
#  3. reconciliation of N instances (`instance reconcile`): a no-op one (goal: under 2 s for
#     1,000, where slapgrid runs one buildout per partition, about a second each), the first one
#     (nothing remembered: every instance rendered), `--full`, and one with one instance changed;
#  4. starting SERVICES services (one per instance, one supervisord): `instance start --all`
#     until supervisord reports all of them RUNNING (it does after `startsecs`, 1 s).
#
#   bash bench/instances.sh                 # N=1000 ROLLBACKS=50 REPS=3 SERVICES=100
#   N=200 REPS=1 bash bench/instances.sh    # quick
#   SECTIONS=reconcile,services bash bench/instances.sh
#
# Needs nix-bin (installed with apt-get when missing) for the rollback comparison, supervisor
# for the services.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}; ROLLBACKS=${ROLLBACKS:-50}; REPS=${REPS:-3}; SERVICES=${SERVICES:-100}
SECTIONS=${SECTIONS:-create,rollback,reconcile,services}
want() { [[ ",$SECTIONS," == *",$1,"* ]]; }
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-instances}
cargo build --release --quiet
S="$PWD/target/release/slapstore"
if want rollback; then command -v nix-env >/dev/null || apt-get install -y -qq nix-bin >/dev/null; fi
mkdir -p "$BENCH_DIR"
settle() { sync; sleep "${SETTLE_SLEEP:-1}"; }
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.4f", m}'; }

echo "# instances: N=$N, ROLLBACKS=$ROLLBACKS, REPS=$REPS, $(nproc) CPU, fs $(df -T "$BENCH_DIR" | awk 'NR==2{print $2}')"
software="$PWD/examples/multi-instance/software.cfg"
names=$(seq -f "web-%g" 1 "$N" | tr '\n' ' ')
if want create; then
create=()
for r in $(seq 1 "$REPS"); do
    root="$BENCH_DIR/create$r"; rm -rf "$root"
    "$S" --root "$root" -q build "$software" > /dev/null 2>&1   # the release, built once
    settle
    a=$(now); "$S" --root "$root" instance create $names --software "$software" > /dev/null 2>&1; b=$(now)
    create+=("$(echo "$b - $a" | bc)")
    # disk beyond data: the partition minus its data directories, plus its generation output
    part=$(du -sk "$root/partitions/web-1" | cut -f1)
    data=$(du -sk "$root/partitions/web-1/srv" "$root/partitions/web-1/var" | awk '{s+=$1} END{print s}')
    gen=$(du -sk "$root"/store/*-web-1-instance | cut -f1)
    shared=$(du -skc "$root"/store/*-server "$root"/store/*-release | tail -1 | cut -f1)
    per_instance=$((part - data + gen))
    rm -rf "$root"; settle
done
create_med=$(printf '%s\n' "${create[@]}" | median)
echo "create $N instances: median ${create_med} s (runs: ${create[*]}); per instance $(echo "scale=2; $create_med * 1000 / $N" | bc) ms"
echo "disk per instance beyond its data: ${per_instance} KiB (partition $((part - data)) KiB + generation ${gen} KiB); shared software: ${shared} KiB once"
fi

# ---- rollback against nix-env --rollback
if want rollback; then
export NIX_CONF_DIR="$BENCH_DIR/nixconf" NIX_USER_CONF_FILES="$BENCH_DIR/nixconf/empty.conf" NIX_REMOTE=local
mkdir -p "$NIX_CONF_DIR"; : > "$NIX_USER_CONF_FILES"
printf 'sandbox = false\nsubstituters =\nbuild-users-group =\nfsync-metadata = true\n' > "$NIX_CONF_DIR/nix.conf"
export HOME="$BENCH_DIR/home"; mkdir -p "$HOME"
nix_t=(); ours_t=()
for r in $(seq 1 "$REPS"); do
    # Nix: a profile with ROLLBACKS+1 generations, then ROLLBACKS rollbacks
    d="$BENCH_DIR/nix$r"; rm -rf "$d"; mkdir -p "$d/gens"
    export NIX_STORE_DIR="$d/store" NIX_STATE_DIR="$d/var" NIX_LOG_DIR="$d/log"
    nix-store --init
    for i in $(seq 0 "$ROLLBACKS"); do echo "gen $i" > "$d/gens/g$i"; done
    mapfile -t G < <(nix-store --add "$d"/gens/g*)
    for x in "${G[@]}"; do nix-env --profile "$d/p" --set "$x"; done
    settle
    a=$(now); for i in $(seq "$ROLLBACKS"); do nix-env --profile "$d/p" --rollback 2>/dev/null; done; b=$(now)
    nix_t+=("$(echo "($b - $a) * 1000 / $ROLLBACKS" | bc -l)")
    rm -rf "$d"
    # slapstore: an instance with ROLLBACKS+1 generations in a chain, then ROLLBACKS rollbacks
    root="$BENCH_DIR/ours$r"; rm -rf "$root"
    "$S" --root "$root" instance create web --software "$software" > /dev/null 2>&1
    for i in $(seq 1 "$ROLLBACKS"); do
        "$S" --root "$root" instance upgrade web --software "$software" -p "greeting=g$i" > /dev/null 2>&1
    done
    settle
    a=$(now); for i in $(seq "$ROLLBACKS"); do "$S" --root "$root" instance rollback web > /dev/null; done; b=$(now)
    ours_t+=("$(echo "($b - $a) * 1000 / $ROLLBACKS" | bc -l)")
    "$root/partitions/web/bin/run" | grep -q "web: Hello" || { echo "rollback did not land on generation 1" >&2; exit 1; }
    rm -rf "$root"
done
nix_med=$(printf '%s\n' "${nix_t[@]}" | median); ours_med=$(printf '%s\n' "${ours_t[@]}" | median)
echo "rollback: nix-env --rollback ${nix_med} ms/op, slapstore instance rollback ${ours_med} ms/op: $(echo "scale=1; $nix_med / $ours_med" | bc)x"
fi

# ---- reconciliation of N instances
if want reconcile; then
root="$BENCH_DIR/reconcile"; rm -rf "$root"
"$S" --root "$root" -q build "$software" > /dev/null 2>&1
"$S" --root "$root" instance create $names --software "$software" > /dev/null 2>&1
rec() { local a b; a=$(now); "$S" --root "$root" instance reconcile "$@" > "$BENCH_DIR/reconcile.out"; b=$(now); echo "$b - $a" | bc; }
settle; first=$(rec)
grep -q "reconciled $N instances: 0 upgraded" "$BENCH_DIR/reconcile.out" || { cat "$BENCH_DIR/reconcile.out" >&2; exit 1; }
noop=(); full=()
for r in $(seq 1 "$REPS"); do
    settle; noop+=("$(rec)")
    grep -q "($N not rendered" "$BENCH_DIR/reconcile.out" || { cat "$BENCH_DIR/reconcile.out" >&2; exit 1; }
    settle; full+=("$(rec --full)")
done
"$S" --root "$root" instance request web-7 -p greeting=changed > /dev/null
settle; one=$(rec)
grep -q "upgraded web-7 to generation 2" "$BENCH_DIR/reconcile.out" || { cat "$BENCH_DIR/reconcile.out" >&2; exit 1; }
"$root/partitions/web-7/bin/run" | grep -q "web-7: changed" || { echo "the request was not deployed" >&2; exit 1; }
noop_med=$(printf '%s\n' "${noop[@]}" | median); full_med=$(printf '%s\n' "${full[@]}" | median)
echo "reconcile $N instances: no-op median ${noop_med} s (runs: ${noop[*]}); first (every instance rendered) ${first} s; --full median ${full_med} s; one instance changed ${one} s"
rm -rf "$root"
fi

# ---- starting SERVICES services under one supervisord
if want services; then
command -v supervisord >/dev/null || apt-get install -y -qq supervisor >/dev/null
root="$BENCH_DIR/services"; rm -rf "$root"; mkdir -p "$BENCH_DIR/svc"
cat > "$BENCH_DIR/svc/software.cfg" <<'EOF2'
[buildout]
parts = instance-profile
[instance-profile]
recipe = slapos.recipe.template
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts = service
  [service]
  recipe = slapos.cookbook:wrapper
  command-line = sleep 100000
  wrapper-path = $${buildout:directory}/etc/service/sleeper
EOF2
"$S" --root "$root" instance create $(seq -f "svc-%g" 1 "$SERVICES" | tr '\n' ' ') --software "$BENCH_DIR/svc/software.cfg" > /dev/null 2>&1
conf="$root/var/supervisor/supervisord.conf"
settle
a=$(now)
"$S" --root "$root" instance start --all > /dev/null
b=$(now)
until [ "$(supervisorctl -c "$conf" status 2>/dev/null | grep -c RUNNING)" -ge "$SERVICES" ]; do sleep 0.05; done
c=$(now)
"$S" --root "$root" instance stop --all > /dev/null
echo "start $SERVICES services (one supervisord): \`instance start --all\` returned after $(echo "$b - $a" | bc) s, all RUNNING after $(echo "$c - $a" | bc) s"
rm -rf "$root"
fi

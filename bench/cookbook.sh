#!/usr/bin/env bash
# Instances whose profile uses the cookbook's recipes natively (bench/cookbook/): creating N of
# them in one command (a password, a free port, a random integer kept in each partition; cron,
# logger, links, promises rendered), a no-op upgrade of one, and `instance status` of one (its
# two promises checked).
#
#   bash bench/cookbook.sh            # N=1000
#   N=100 bash bench/cookbook.sh      # quick
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-cookbook}
cargo build --release --quiet
S="$PWD/target/release/slapstore"
software="$PWD/bench/cookbook/software.cfg"
root="$BENCH_DIR/root"; rm -rf "$root"; mkdir -p "$BENCH_DIR"
now() { date +%s.%N; }
"$S" --root "$root" -q build "$software" > /dev/null
names=$(seq -f "i-%g" 1 "$N" | tr '\n' ' ')
sync; sleep 1
a=$(now); "$S" --root "$root" instance create $names --software "$software" > /dev/null; b=$(now)
printf 'create %d cookbook instances: %.2f s (%.2f ms each)\n' "$N" "$(echo "$b - $a" | bc)" "$(echo "($b - $a) * 1000 / $N" | bc -l)"
ports=$(awk 1 "$root"/partitions/*/.slapstore/backup-port.port | sort -u | wc -l)
echo "distinct ports kept: $ports of $N"
a=$(now); "$S" --root "$root" instance upgrade i-1 --software "$software" > /dev/null; b=$(now)
printf 'no-op upgrade of one: %.3f s\n' "$(echo "$b - $a" | bc)"
a=$(now); "$S" --root "$root" instance status i-1 > /dev/null; b=$(now)
printf 'status of one (2 promises): %.3f s\n' "$(echo "$b - $a" | bc)"
rm -rf "$BENCH_DIR"

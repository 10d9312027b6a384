#!/usr/bin/env bash
# gc.sh — side-by-side benchmark of slapstore's garbage collector and optimiser against real
# Nix 2.8 (Debian's nix-bin) on the same data, runs alternated (Nix, slapstore, Nix, ...),
# medians and ratios.
#
#   bash bench/gc.sh        # REPS=3: ~4 min on a quiet 2-vCPU VM, 12 min on a busy one (removing
#                           # the 100k-path store of test 4 alone took 40 s to 8 min on ext4 -o discard)
#   REPS=5 BENCH_DIR=/dev/shm/ssgc SETTLE_SLEEP=0 bash bench/gc.sh   # on tmpfs
#   ONLY="1 5" N=1000 REPS=1 bash bench/gc.sh                        # quick look
#
# Same approach as bench/store.sh: the Nix anchor harness's data generator
# (../shared/anchors/nixbench/gen.py, same seeds, so the same data as its bench.sh) and its way
# of isolating Nix on throwaway stores (NIX_STORE_DIR/NIX_STATE_DIR/NIX_LOG_DIR under
# $BENCH_DIR/stores, NIX_CONF_DIR with sandbox=false and no substituters, NIX_REMOTE=local,
# `nix-store --init` before timing); never touches /nix. slapstore gets a throwaway `--root`
# under $BENCH_DIR/stores too (initialised by an untimed `store register` of nothing) and runs from a private copy
# of its binary. Every timed command follows a settle (sync, optional cache drop, sleep
# SETTLE_SLEEP). Only the collection / optimisation is timed; filling the stores is not.
#
# Tests (REPS repetitions each, medians over the successful ones; each rep on fresh stores):
#   1  GC of N unrelated unreachable paths (gen.py flat N 100): `nix-store --add` them, then
#      `nix-store --gc`  vs  `slapstore store add` them, then `slapstore gc`. All N deleted.
#   2  GC of N+1 unreachable paths with references (gen.py graph N FANOUT; the slapstore side
#      gets the same graph through bench/store_graph.py graph and `store register`): all N+1
#      deleted. It runs on the store of test 3, right after it, with the root removed (as
#      nixbench/bench.sh's c.gc_live then c.gc_dead).
#   3  GC of the same graph, rooted (Nix: a symlink in $NIX_STATE_DIR/gcroots; slapstore:
#      `pin TOP --name top`): nothing deleted; the liveness walk of N+1 paths.
#   4  slapstore only: a BIG_N-path store with nothing dead (graph BIG_N FANOUT, top pinned):
#      `gc` and `gc --dry-run`, alternated, REPS each (the store is built once, untimed).
#   5  optimise of DUP_COPIES identical trees (gen.py dup DUP_COPIES DUP_FILES DUP_KB): `nix-store
#      --add dup*` then `nix-store --optimise`  vs  `store add dup*` then `slapstore optimise`.
#      Both must save about (DUP_COPIES-1) x DUP_FILES x DUP_KB KiB.
#
# Knobs (env): BENCH_DIR=/tmp/slapstore-bench-gc REPS=3 N=10000 FANOUT=3 BIG_N=100000
#   DUP_COPIES=5 DUP_FILES=2000 DUP_KB=48 ONLY="1 2 3 4 5" (2 and 3 run together)
#   SETTLE_SLEEP=1 DROP_CACHES=0 (1: drop the page cache before each timed op; needs root)
#   KEEP=0 (1: keep the stores)  NIXBENCH=<repo>/../shared/anchors/nixbench
#   SLAPSTORE=<binary> (default: `cargo build --release`, then target/release/slapstore)
#   PYTHON=<interpreter for the generators> (default: a real python3, not a pyenv shim)
#
# Output: $BENCH_DIR/gc-results.tsv (every run), $BENCH_DIR/gc-counts.tsv (what every run
# deleted or saved), $BENCH_DIR/gc-summary.md (the table), logs of every timed command under
# $BENCH_DIR/logs/.
set -euo pipefail

T_START=$EPOCHREALTIME
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NIXBENCH=${NIXBENCH:-$REPO/../shared/anchors/nixbench}
GEN_PY=$NIXBENCH/gen.py
STORE_GRAPH=$REPO/bench/store_graph.py
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-gc}
REPS=${REPS:-3}; N=${N:-10000}; FANOUT=${FANOUT:-3}; BIG_N=${BIG_N:-100000}
DUP_COPIES=${DUP_COPIES:-5}; DUP_FILES=${DUP_FILES:-2000}; DUP_KB=${DUP_KB:-48}
ONLY=${ONLY:-"1 2 3 4 5"}; KEEP=${KEEP:-0}; DROP_CACHES=${DROP_CACHES:-0}; SETTLE_SLEEP=${SETTLE_SLEEP:-1}

[ -f "$GEN_PY" ] || { echo "gen.py not found at $GEN_PY (set NIXBENCH)" >&2; exit 1; }

# a real interpreter for the generators (a pyenv shim costs ~100 ms a start)
if [ -z "${PYTHON:-}" ]; then
  for p in /root/.pyenv/versions/3.11.7/bin/python3 /usr/bin/python3; do
    [ -x "$p" ] && { PYTHON=$p; break; }
  done
  PYTHON=${PYTHON:-$(command -v python3)}
fi

say() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- tools
command -v nix-store >/dev/null || { echo "nix-store not found: apt-get install -y nix-bin" >&2; exit 1; }
if [ -z "${SLAPSTORE:-}" ]; then
  SLAPSTORE=$REPO/target/release/slapstore
  if ! (cd "$REPO" && cargo build --release --quiet); then
    [ -x "$SLAPSTORE" ] || { echo "cargo build --release failed" >&2; exit 1; }
    BUILD_NOTE="cargo build --release failed (work tree mid-edit?): timed the existing binary of $(date -r "$SLAPSTORE" -u +%FT%TZ)"
    echo "$BUILD_NOTE" >&2
  fi
fi
# run a private copy: a concurrent `cargo build` must not swap the binary in the middle of the run
mkdir -p "$BENCH_DIR"
cp "$SLAPSTORE" "$BENCH_DIR/slapstore.bin.tmp" && mv "$BENCH_DIR/slapstore.bin.tmp" "$BENCH_DIR/slapstore.bin"
S=$BENCH_DIR/slapstore.bin; SLAPSTORE_MTIME=$(date -r "$SLAPSTORE" -u +%FT%TZ)
SLAPSTORE_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$REPO" && [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]) || SLAPSTORE_REV="$SLAPSTORE_REV+dirty"

# ---------------------------------------------------------------- isolation (as nixbench/bench.sh)
mkdir -p "$BENCH_DIR"/{conf,home,data,logs,stores}
cat > "$BENCH_DIR/conf/nix.conf" <<'EOF'
# throwaway single-user store: no daemon, no sandbox, no network
sandbox = false
substituters =
build-users-group =
auto-optimise-store = false
min-free = 0
fsync-metadata = true
keep-derivations = true
keep-outputs = false
experimental-features = nix-command
EOF
: > "$BENCH_DIR/conf/empty.conf"
export NIX_CONF_DIR="$BENCH_DIR/conf" NIX_USER_CONF_FILES="$BENCH_DIR/conf/empty.conf"
export HOME="$BENCH_DIR/home" XDG_CACHE_HOME="$BENCH_DIR/home/.cache" NIX_PATH="" NIX_REMOTE=local
unset NIX_DAEMON_SOCKET_PATH SLAPSTORE_ROOT || true

D=$BENCH_DIR/data; LOG=$BENCH_DIR/logs; DUPD=$D/dup$DUP_COPIES.$DUP_FILES.$DUP_KB
RES=$BENCH_DIR/gc-results.tsv; CNT=$BENCH_DIR/gc-counts.tsv
SUM=$BENCH_DIR/gc-summary.md; ODD=$BENCH_DIR/gc-odd.txt
if [ -f "$RES" ]; then   # keep old runs aside
  stamp=$(date +%s); mv "$RES" "$BENCH_DIR/gc-results.$stamp.tsv"
  [ -f "$CNT" ] && mv "$CNT" "$BENCH_DIR/gc-counts.$stamp.tsv"
fi
printf 'test\ttool\trep\tseconds\tstatus\tnote\n' > "$RES"
printf 'test\ttool\trep\twhat\tvalue\n' > "$CNT"
: > "$ODD"

odd() { say "ODD: $*"; printf '%s\n' "$*" >> "$ODD"; }

# use_store NAME: point every nix command at a fresh, empty store <BENCH_DIR>/stores/NAME
use_store() {
  local d="$BENCH_DIR/stores/$1"
  rm -rf "$d"; mkdir -p "$d"
  export NIX_STORE_DIR="$d/store" NIX_STATE_DIR="$d/var" NIX_LOG_DIR="$d/log"
  nix-store --init            # create db/schema now so it is not in any timing
  STORE=$NIX_STORE_DIR
}
# use_root NAME: a fresh, empty slapstore root <BENCH_DIR>/stores/NAME (database created untimed)
use_root() {
  ROOT="$BENCH_DIR/stores/$1"
  rm -rf "$ROOT"
  "$S" --root "$ROOT" store register < /dev/null
}
drop() { [ "$KEEP" = 1 ] || rm -rf "$BENCH_DIR/stores/$1"; }

settle() { sync; if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; sleep "$SETTLE_SLEEP"; }

# timeit TEST TOOL REP NOTE -- cmd...   (stdout+stderr to logs/TEST.TOOL.REP.log; with OUT=FILE
# set for the call, stdout goes to FILE instead: no `bash -c` wrapper in the timing); a failure
# is recorded (status FAIL, left out of the medians, reported under "odd") and the run goes on
LAST=0; LASTLOG=; LASTRC=0
timeit() {
  local t=$1 tool=$2 r=$3 note=$4 out=${OUT:-}; shift 5
  LASTLOG="$LOG/$t.$tool.$r.log"
  [ -n "$out" ] || out=$LASTLOG
  settle
  local rc=0 a b
  a=$EPOCHREALTIME
  if [ "$out" = "$LASTLOG" ]; then "$@" > "$LASTLOG" 2>&1 || rc=$?; else "$@" > "$out" 2> "$LASTLOG" || rc=$?; fi
  b=$EPOCHREALTIME
  LAST=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.4f", b-a}')
  LASTRC=$rc
  local st=ok; [ "$rc" = 0 ] || st=FAIL
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$tool" "$r" "$LAST" "$st" "$note" >> "$RES"
  say "$t $tool rep$r: ${LAST}s $st"
  if [ "$rc" != 0 ]; then
    odd "$t $tool rep$r: exit $rc: $(printf '%q ' "$@")"
    odd "    $(tail -n 3 "$LASTLOG" | tr '\n' ' ')"
  fi
  return 0
}

median() {  # median seconds of TEST for TOOL over the successful runs, or NA
  awk -F'\t' -v t="$1" -v o="$2" '$1==t && $2==o && $5=="ok"{print $4}' "$RES" | sort -g |
    awk '{v[NR]=$1} END{ if(!NR){print "NA"; exit}
         m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.4f", m}'
}
runs() { awk -F'\t' -v t="$1" -v o="$2" '$1==t && $2==o{n++; if($5=="ok")k++} END{printf "%d/%d", k, n}' "$RES"; }

# expect WHAT GOT WANTED: a check of a result (untimed); a mismatch goes under "odd"
expect() { [ "$2" = "$3" ] || odd "$1: got $2, expected $3"; }
# count TEST TOOL REP WHAT VALUE: what a run deleted / saved (for the table)
count() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$CNT"; }
# counted TEST TOOL WHAT: the distinct values over the reps ("10000" or "9990..10000")
counted() {
  awk -F'\t' -v t="$1" -v o="$2" -v w="$3" '$1==t && $2==o && $4==w{print $5}' "$CNT" | sort -g |
    awk 'NR==1{lo=$1} {hi=$1; n++} END{ if(!n) print "NA"; else if (lo==hi) print lo; else print lo ".." hi }'
}

# entries left in a store directory (Nix keeps its .links there)
left() { find "$1" -mindepth 1 -maxdepth 1 ! -name .links | wc -l; }
# nix_deleted LOG: N of "N store paths deleted, X MiB freed" (0 when Nix printed nothing)
nix_deleted() { { grep -o '^[0-9]* store paths deleted' "$1" || echo 0; } | head -n1 | cut -d' ' -f1; }
# json FILE EXPR: a value from slapstore's --json output (d is the object)
json() { "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null || echo NA; }

# ---------------------------------------------------------------- data (same as bench.sh's)
gen_data() {
  [ -d "$D/flat$N" ] || { say "generating flat$N"; "$PYTHON" "$GEN_PY" flat "$D/flat$N" "$N" 100; }
  if [ ! -d "$DUPD" ]; then
    say "generating $DUP_COPIES identical trees of $DUP_FILES x $DUP_KB KiB"
    rm -rf "$DUPD.tmp"
    "$PYTHON" "$GEN_PY" dup "$DUPD.tmp" "$DUP_COPIES" "$DUP_FILES" "$DUP_KB"
    mv "$DUPD.tmp" "$DUPD"
  fi
}

# ---------------------------------------------------------------- 1: N unrelated dead paths
test_1() {
  local r out
  for r in $(seq 1 "$REPS"); do
    use_store n1.$r
    say "1 rep$r: filling the stores (untimed)"
    nix-store --add "$D/flat$N"/* > "$LOG/1.nix.add.out"
    expect "1.gc_flat nix rep$r: paths added" "$(wc -l < "$LOG/1.nix.add.out")" "$N"
    timeit 1.gc_flat nix "$r" "gc of $N unrelated unreachable paths" -- nix-store --gc
    count 1.gc_flat nix "$r" deleted "$(nix_deleted "$LASTLOG")"
    expect "1.gc_flat nix rep$r: deleted" "$(nix_deleted "$LASTLOG")" "$N"
    expect "1.gc_flat nix rep$r: entries left in the store" "$(left "$STORE")" 0
    drop n1.$r

    use_root s1.$r
    "$S" --root "$ROOT" store add "$D/flat$N"/* > "$LOG/1.slapstore.add.out"
    expect "1.gc_flat slapstore rep$r: paths added" "$(wc -l < "$LOG/1.slapstore.add.out")" "$N"
    out=$LOG/1.gc_flat.slapstore.$r.json
    OUT=$out timeit 1.gc_flat slapstore "$r" "gc of $N unrelated unreachable paths" -- \
      "$S" --root "$ROOT" gc --json
    count 1.gc_flat slapstore "$r" deleted "$(json "$out" 'len(d["deleted"])')"
    expect "1.gc_flat slapstore rep$r: deleted" "$(json "$out" 'len(d["deleted"])')" "$N"
    expect "1.gc_flat slapstore rep$r: entries left in the store" "$(left "$ROOT/store")" 0
    drop s1.$r
  done
}

# ---------------------------------------------------------------- 3 then 2: the graph, live then dead
test_23() {
  local r top info out
  for r in $(seq 1 "$REPS"); do
    use_store n23.$r
    say "2+3 rep$r: generating and registering the graph (untimed)"
    info=$D/graph$N.nix.info
    top=$("$PYTHON" "$GEN_PY" graph "$STORE" "$N" "$FANOUT" "$info" top)
    nix-store --register-validity < "$info"
    ln -sfn "$top" "$NIX_STATE_DIR/gcroots/top"
    timeit 3.gc_live nix "$r" "gc, all $((N + 1)) paths live (liveness walk only)" -- nix-store --gc
    count 3.gc_live nix "$r" deleted "$(nix_deleted "$LASTLOG")"
    expect "3.gc_live nix rep$r: deleted" "$(nix_deleted "$LASTLOG")" 0
    expect "3.gc_live nix rep$r: entries left in the store" "$(left "$STORE")" "$((N + 1))"
    rm -f "$NIX_STATE_DIR/gcroots/top"
    timeit 2.gc_graph nix "$r" "gc of $((N + 1)) unreachable paths with references (fanout $FANOUT)" -- nix-store --gc
    count 2.gc_graph nix "$r" deleted "$(nix_deleted "$LASTLOG")"
    expect "2.gc_graph nix rep$r: deleted" "$(nix_deleted "$LASTLOG")" "$((N + 1))"
    expect "2.gc_graph nix rep$r: entries left in the store" "$(left "$STORE")" 0
    drop n23.$r

    use_root s23.$r
    info=$D/graph$N.slapstore.info
    top=$("$PYTHON" "$STORE_GRAPH" graph "$GEN_PY" "$ROOT/store" "$N" "$FANOUT" "$info" top)
    "$S" --root "$ROOT" store register < "$info"
    "$S" --root "$ROOT" pin "$top" --name top > /dev/null
    out=$LOG/3.gc_live.slapstore.$r.json
    OUT=$out timeit 3.gc_live slapstore "$r" "gc, all $((N + 1)) paths live (liveness walk only)" -- \
      "$S" --root "$ROOT" gc --json
    count 3.gc_live slapstore "$r" deleted "$(json "$out" 'len(d["deleted"])')"
    expect "3.gc_live slapstore rep$r: deleted" "$(json "$out" 'len(d["deleted"])')" 0
    expect "3.gc_live slapstore rep$r: live paths" "$(json "$out" 'd.get("live")')" "$((N + 1))"
    expect "3.gc_live slapstore rep$r: entries left in the store" "$(left "$ROOT/store")" "$((N + 1))"
    "$S" --root "$ROOT" unpin top > /dev/null
    out=$LOG/2.gc_graph.slapstore.$r.json
    OUT=$out timeit 2.gc_graph slapstore "$r" "gc of $((N + 1)) unreachable paths with references (fanout $FANOUT)" -- \
      "$S" --root "$ROOT" gc --json
    count 2.gc_graph slapstore "$r" deleted "$(json "$out" 'len(d["deleted"])')"
    expect "2.gc_graph slapstore rep$r: deleted" "$(json "$out" 'len(d["deleted"])')" "$((N + 1))"
    expect "2.gc_graph slapstore rep$r: entries left in the store" "$(left "$ROOT/store")" 0
    drop s23.$r
  done
}

# ---------------------------------------------------------------- 4: BIG_N paths, nothing dead
test_4() {
  local r top info out a b
  use_root s4
  info=$D/graph$BIG_N.slapstore.info
  say "generating the $BIG_N-path graph (untimed)"
  top=$("$PYTHON" "$STORE_GRAPH" graph "$GEN_PY" "$ROOT/store" "$BIG_N" "$FANOUT" "$info" top)
  a=$EPOCHREALTIME
  "$S" --root "$ROOT" store register < "$info"
  b=$EPOCHREALTIME
  REG_BIG=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", b-a}')
  say "registered $((BIG_N + 1)) paths in ${REG_BIG}s (untimed for the table)"
  "$S" --root "$ROOT" pin "$top" --name top > /dev/null
  for r in $(seq 1 "$REPS"); do
    out=$LOG/4.gc_big_live.slapstore.$r.json
    OUT=$out timeit 4.gc_big_live slapstore "$r" "gc, all $((BIG_N + 1)) paths live" -- \
      "$S" --root "$ROOT" gc --json
    count 4.gc_big_live slapstore "$r" deleted "$(json "$out" 'len(d["deleted"])')"
    expect "4.gc_big_live slapstore rep$r: deleted" "$(json "$out" 'len(d["deleted"])')" 0
    expect "4.gc_big_live slapstore rep$r: live paths" "$(json "$out" 'd.get("live")')" "$((BIG_N + 1))"
    out=$LOG/4.gc_big_dry.slapstore.$r.json
    OUT=$out timeit 4.gc_big_dry slapstore "$r" "gc --dry-run, all $((BIG_N + 1)) paths live" -- \
      "$S" --root "$ROOT" gc --dry-run --json
    count 4.gc_big_dry slapstore "$r" deleted "$(json "$out" 'len(d["deleted"])')"
    expect "4.gc_big_dry slapstore rep$r: would delete" "$(json "$out" 'len(d["deleted"])')" 0
  done
  expect "4.gc_big_live slapstore: entries left in the store" "$(left "$ROOT/store")" "$((BIG_N + 1))"
  say "removing the $BIG_N-path store"
  a=$EPOCHREALTIME
  drop s4
  b=$EPOCHREALTIME
  RM_BIG=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", b-a}')
  say "removed it in ${RM_BIG}s (rm -rf, untimed)"
}

# ---------------------------------------------------------------- 5: optimise
test_5() {
  local r out mib
  for r in $(seq 1 "$REPS"); do
    use_store n5.$r
    say "5 rep$r: nix-store --add of the $DUP_COPIES trees (untimed)"
    nix-store --add "$DUPD"/dup* > /dev/null
    timeit 5.optimise nix "$r" "optimise $DUP_COPIES copies x $DUP_FILES x $DUP_KB KiB" -- nix-store --optimise
    # "374.99 MiB freed by hard-linking 8000 files"
    mib=$(grep -o '[0-9.]* MiB freed by hard-linking' "$LASTLOG" | cut -d' ' -f1 | head -n1)
    count 5.optimise nix "$r" saved_mib "${mib:-NA}"
    count 5.optimise nix "$r" linked "$(grep -o 'hard-linking [0-9]* files' "$LASTLOG" | cut -d' ' -f2 | head -n1)"
    drop n5.$r

    use_root s5.$r
    say "5 rep$r: slapstore store add of the $DUP_COPIES trees (untimed)"
    "$S" --root "$ROOT" store add "$DUPD"/dup* > /dev/null
    out=$LOG/5.optimise.slapstore.$r.json
    OUT=$out timeit 5.optimise slapstore "$r" "optimise $DUP_COPIES copies x $DUP_FILES x $DUP_KB KiB" -- \
      "$S" --root "$ROOT" optimise --json
    count 5.optimise slapstore "$r" saved_mib "$(json "$out" '"%.2f" % (d["bytes_saved"] / 1048576)')"
    count 5.optimise slapstore "$r" linked "$(json "$out" 'd["linked"]')"
    drop s5.$r
  done
  # both should save (copies - 1) x files x KiB
  local want; want=$(awk -v c="$DUP_COPIES" -v f="$DUP_FILES" -v k="$DUP_KB" 'BEGIN{printf "%.2f", (c-1)*f*k/1024}')
  local tool v
  for tool in nix slapstore; do
    for v in $(awk -F'\t' -v o="$tool" '$1=="5.optimise" && $2==o && $4=="saved_mib"{print $5}' "$CNT"); do
      awk -v v="$v" -v w="$want" 'BEGIN{ exit !(v!="NA" && v>=w*0.99 && v<=w*1.01) }' ||
        odd "5.optimise $tool: saved $v MiB, expected about $want MiB"
    done
  done
  OPT_WANT=$want
}

# ---------------------------------------------------------------- main
FS=$(df -T "$BENCH_DIR" | awk 'NR==2{print $2}')
say "$(nix-store --version) | slapstore $SLAPSTORE_REV | $(uname -r) | $(nproc) CPU | fs: $FS | REPS=$REPS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
gen_data
for t in $ONLY; do
  say "load average before test $t: $(cut -d' ' -f1-3 /proc/loadavg)"
  case $t in
    1) test_1 ;; 2|3) [ "${t23_done:-0}" = 1 ] || { test_23; t23_done=1; } ;;
    4) test_4 ;; 5) test_5 ;;
    *) echo "unknown test $t" >&2 ;;
  esac
done
unset NIX_STORE_DIR NIX_STATE_DIR NIX_LOG_DIR
[ "$KEEP" = 1 ] || rm -rf "$BENCH_DIR/stores"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}')

# ---------------------------------------------------------------- summary
has() { grep -q "^$1	$2	" "$RES"; }
fmt() {  # seconds -> "1.234 s" or "12.3 ms"
  awk -v x="$1" 'BEGIN{ if (x=="NA") print "NA"; else if (x<1) printf "%.1f ms", x*1000; else printf "%.3f s", x }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="NA"||b=="NA"||b+0==0) print "NA"; else printf "%.2f", a/b }'; }
goal() {  # goal RATIO WANT -> "10x: met" / "10x: not met"
  awk -v r="$1" -v w="$2" 'BEGIN{ if (r=="NA") print w "x: NA"; else if (r+0 >= w) print w "x: met"; else print w "x: not met" }'
}
row() {  # row TEST LABEL WHAT GOAL
  has "$1" nix || has "$1" slapstore || return 0
  local a b r c1 c2
  a=$(median "$1" nix); b=$(median "$1" slapstore); r=$(ratio "$a" "$b")
  if [ "$3" = saved ]; then
    c1="$(counted "$1" nix saved_mib) MiB ($(counted "$1" nix linked) files)"
    c2="$(counted "$1" slapstore saved_mib) MiB ($(counted "$1" slapstore linked) files)"
  else
    c1="$(counted "$1" nix deleted) deleted"; c2="$(counted "$1" slapstore deleted) deleted"
  fi
  echo "| $2 | $(fmt "$a") ($(runs "$1" nix)) | $(fmt "$b") ($(runs "$1" slapstore)) | $r | $c1 | $c2 | $(goal "$r" "$4") |"
}
only() {  # only TEST LABEL GOAL_SECONDS
  has "$1" slapstore || return 0
  local b; b=$(median "$1" slapstore)
  local g; g=$(awk -v b="$b" -v w="$3" 'BEGIN{ if (w=="") print "—"; else if (b=="NA") print "< " w " s: NA"; else if (b+0 < w) print "< " w " s: met"; else print "< " w " s: not met" }')
  echo "| $2 | — | $(fmt "$b") ($(runs "$1" slapstore)) | — | — | $(counted "$1" slapstore deleted) deleted | $g |"
}
{
  echo "# slapstore gc / optimise vs Nix — $(date -u +%FT%TZ)"
  echo
  echo "$(nix-store --version); slapstore $SLAPSTORE_REV ($SLAPSTORE of $SLAPSTORE_MTIME, run from a copy)${BUILD_NOTE:+; $BUILD_NOTE}."
  echo "host: $(uname -r), $(nproc) CPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)),"\
       "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $BENCH_DIR on $FS"\
       "($(findmnt -no SOURCE,OPTIONS -T "$BENCH_DIR" 2>/dev/null | head -n1))."
  echo "REPS=$REPS, SETTLE_SLEEP=$SETTLE_SLEEP, DROP_CACHES=$DROP_CACHES; runs alternated Nix, slapstore;"\
       "medians over successful runs (ok/total in brackets); whole script ${ELAPSED} s."
  echo "Load average (1/5/15 min) at start: $LOAD_START, at end: $LOAD_END (other work on the machine skews the figures)."
  echo "Only the collection / optimisation is timed (filling the stores is not). Graph: gen.py graph $N, fanout $FANOUT;"\
       "test 2 runs on the store of test 3 right after it, root removed. Counts: distinct values over the reps."
  [ -n "${REG_BIG:-}" ] && echo "Test 4's store (untimed for the table): $((BIG_N + 1)) paths registered in ${REG_BIG} s${RM_BIG:+, removed with rm -rf in ${RM_BIG} s}."
  echo
  echo "| test | Nix median | slapstore median | ratio (Nix/slapstore) | Nix: deleted/saved | slapstore: deleted/saved | goal |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  row 1.gc_flat "1. gc of $N unrelated unreachable paths" deleted 10
  row 2.gc_graph "2. gc of $((N + 1)) unreachable paths with references" deleted 10
  row 3.gc_live "3. gc of an all-live $((N + 1))-path store (liveness walk)" deleted 10
  only 4.gc_big_live "4. gc of an all-live $((BIG_N + 1))-path store (slapstore only)" 5
  only 4.gc_big_dry "4b. gc --dry-run of the same (slapstore only)" ""
  row 5.optimise "5. optimise $DUP_COPIES identical trees ($DUP_FILES x $DUP_KB KiB; ~${OPT_WANT:-?} MiB to save)" saved 5
  echo
  if [ -s "$ODD" ]; then
    echo "Odd (failures and failed checks):"
    echo
    sed 's/^/    /' "$ODD"
  else
    echo "No failures; all checks passed (paths added, paths deleted, entries left in the store, live counts, bytes saved)."
  fi
} > "$SUM"
cat "$SUM"

#!/usr/bin/env bash
# store.sh — side-by-side benchmark of slapstore's store against real Nix 2.8 (Debian's nix-bin)
# on the same data, runs alternated (Nix, slapstore, Nix, slapstore, ...), medians and ratios.
#
#   bash bench/store.sh                       # ~10 min with REPS=3 on a 2-vCPU VM
#   REPS=5 BENCH_DIR=/dev/shm/ssb SETTLE_SLEEP=0 bash bench/store.sh   # on tmpfs
#   ONLY="1 2" N_LIST=1000 REPS=1 bash bench/store.sh                   # quick look
#
# It reuses the Nix anchor harness (../shared/anchors/nixbench): its data generator (gen.py:
# same seeds, so the same data as `ONLY=none bash bench.sh` makes under $BENCH_DIR/data) and its
# way of isolating Nix on throwaway stores (NIX_STORE_DIR/NIX_STATE_DIR/NIX_LOG_DIR under
# $BENCH_DIR/stores, NIX_CONF_DIR with sandbox=false and no substituters, NIX_REMOTE=local,
# `nix-store --init` before timing). Never touches /nix. slapstore gets a throwaway
# `--root` under $BENCH_DIR/stores too (initialised by an untimed `store register` of nothing, before timing).
# Every timed command follows a settle (sync, optional cache drop, sleep SETTLE_SLEEP).
#
# Tests (N in N_LIST; REPS repetitions each, medians over the successful ones):
#   1  `store add` of N small files as N paths   vs  `nix-store --add` (gen.py flat N 100)
#   2  `store register` of N paths + references  vs  `nix-store --register-validity` (gen.py
#      graph N FANOUT; slapstore gets the same graph with its names translated to its base32,
#      bench/store_graph.py), then the closure query of the top path (`path-info --closure`
#      vs `nix-store -qR`)
#   3  `store add` of the tree (gen.py tree: N_SMALL small files + N_BIG x BIG_MB MiB) as one path
#   3b the same followed by `sync` (slapstore syncs before committing; Nix leaves the write-back)
#   4  on the store of 3: `verify --check-contents` and a no-op re-add of the tree (Nix's
#      `--verify --check-contents` and re-`--add` are shown next to them for reference)
#   5  `build -j1` against `-j2` of PAR_PARTS independent CPU-bound `plone.recipe.command`
#      parts (~BUSY_SECONDS each), fresh root each time (slapstore only: the speed-up)
#   6  an ERP5-sized profile (ERP5_PARTS parts, each referring to 0..ERP5_DEPS earlier ones):
#      first build, then `plan` and a no-op `build`, QUICK_RUNS runs each, then the first build
#      again without the build sandbox (`--no-sandbox`: its cost per part) (slapstore only)
#
# Knobs (env): BENCH_DIR=/tmp/slapstore-bench REPS=3 N_LIST="1000 10000" FANOUT=3
#   N_SMALL=10000 SMALL_MAX=8192 N_BIG=4 BIG_MB=112 PAR_PARTS=4 BUSY_SECONDS=3
#   ERP5_PARTS=600 ERP5_DEPS=3 QUICK_RUNS=10 ONLY="1 2 3 5 6" (test 4 runs with 3)
#   SETTLE_SLEEP=1 DROP_CACHES=0 (1: drop the page cache before each timed op; needs root)
#   KEEP=0 (1: keep the stores)  NIXBENCH=<repo>/../shared/anchors/nixbench
#   SLAPSTORE=<binary> (default: `cargo build --release`, then target/release/slapstore)
#   PYTHON=<interpreter for the generators> (default: a real python3, not a pyenv shim)
#
# Output: $BENCH_DIR/store-results.tsv (every run), $BENCH_DIR/store-summary.md (the tables),
# logs of every timed command under $BENCH_DIR/logs/.
set -euo pipefail

T_START=$EPOCHREALTIME
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NIXBENCH=${NIXBENCH:-$REPO/../shared/anchors/nixbench}
GEN_PY=$NIXBENCH/gen.py
STORE_GRAPH=$REPO/bench/store_graph.py
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench}
REPS=${REPS:-3}
N_LIST=${N_LIST:-"1000 10000"}; FANOUT=${FANOUT:-3}
N_SMALL=${N_SMALL:-10000}; SMALL_MAX=${SMALL_MAX:-8192}; N_BIG=${N_BIG:-4}; BIG_MB=${BIG_MB:-112}
PAR_PARTS=${PAR_PARTS:-4}; BUSY_SECONDS=${BUSY_SECONDS:-3}
ERP5_PARTS=${ERP5_PARTS:-600}; ERP5_DEPS=${ERP5_DEPS:-3}; QUICK_RUNS=${QUICK_RUNS:-10}
ONLY=${ONLY:-"1 2 3 5 6"}; KEEP=${KEEP:-0}; DROP_CACHES=${DROP_CACHES:-0}; SETTLE_SLEEP=${SETTLE_SLEEP:-1}

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
# Nix only for the tests that compare with it (5 and 6 time slapstore alone)
NEEDS_NIX=0
for t in $ONLY; do case $t in 1|2|3|3b|4) NEEDS_NIX=1 ;; esac; done
if [ "$NEEDS_NIX" = 1 ] && ! command -v nix-store >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "nix-store not found: installing Debian's nix-bin"
    # waits for a concurrent apt/dpkg run instead of failing on its lock
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y nix-bin >&2 ||
      { apt-get -o DPkg::Lock::Timeout=900 update >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y nix-bin >&2; }
  fi
  command -v nix-store >/dev/null || { echo "nix-store not found: apt-get install -y nix-bin" >&2; exit 1; }
fi
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

D=$BENCH_DIR/data; LOG=$BENCH_DIR/logs
RES=$BENCH_DIR/store-results.tsv; SUM=$BENCH_DIR/store-summary.md; ODD=$BENCH_DIR/store-odd.txt
[ -f "$RES" ] && mv "$RES" "$BENCH_DIR/store-results.$(date +%s).tsv"   # keep old runs aside
printf 'test\ttool\trep\tseconds\tstatus\tnote\n' > "$RES"
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

# timeit TEST TOOL REP NOTE -- cmd...   (stdout+stderr to logs/TEST.TOOL.REP.log); a failure is
# recorded (status FAIL, left out of the medians, reported under "odd") and the run goes on
LAST=0; LASTLOG=
timeit() {
  local t=$1 tool=$2 r=$3 note=$4; shift 5
  LASTLOG="$LOG/$t.$tool.$r.log"
  settle
  local rc=0 a b
  a=$EPOCHREALTIME
  "$@" > "$LASTLOG" 2>&1 || rc=$?
  b=$EPOCHREALTIME
  LAST=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.4f", b-a}')
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

# ---------------------------------------------------------------- data (same as bench.sh's)
gen_data() {
  if [ ! -d "$D/tree" ]; then
    say "generating tree: $N_SMALL small files (1..$SMALL_MAX B) + $N_BIG x $BIG_MB MiB"
    rm -rf "$D/tree.tmp"
    "$PYTHON" "$GEN_PY" tree "$D/tree.tmp" "$N_SMALL" "$SMALL_MAX" "$N_BIG" "$BIG_MB"
    mv "$D/tree.tmp" "$D/tree"
  fi
  for n in $N_LIST; do
    [ -d "$D/flat$n" ] || "$PYTHON" "$GEN_PY" flat "$D/flat$n" "$n" 100
  done
  TREE_BYTES=$(du -sb "$D/tree" | cut -f1)
  TREE_FILES=$(find "$D/tree" -type f | wc -l)
  TREE_MIB=$((TREE_BYTES / 1048576))
}

# ---------------------------------------------------------------- 1: add N small files as N paths
test_1() {
  local n r out
  for n in $N_LIST; do
    for r in $(seq 1 "$REPS"); do
      use_store n1.$n.$r
      out=$LOG/1.nix.$n.out
      timeit 1.add_many.$n nix "$r" "add $n small files as $n paths" -- \
        bash -c "nix-store --add $D/flat$n/* > $out"
      expect "1.add_many.$n nix rep$r: paths printed" "$(wc -l < "$out")" "$n"
      drop n1.$n.$r

      use_root s1.$n.$r
      out=$LOG/1.slapstore.$n.out
      timeit 1.add_many.$n slapstore "$r" "add $n small files as $n paths" -- \
        bash -c "$S --root $ROOT store add $D/flat$n/* > $out"
      expect "1.add_many.$n slapstore rep$r: paths printed" "$(wc -l < "$out")" "$n"
      drop s1.$n.$r
    done
  done
}

# ---------------------------------------------------------------- 2: register N paths with refs
test_2() {
  local n r top info
  for n in $N_LIST; do
    for r in $(seq 1 "$REPS"); do
      use_store n2.$n.$r
      info=$D/reg$n.nix.info
      top=$("$PYTHON" "$GEN_PY" graph "$STORE" "$n" "$FANOUT" "$info" top)
      timeit 2.register.$n nix "$r" "register $n paths + refs (fanout $FANOUT)" -- \
        bash -c "nix-store --register-validity < $info"
      timeit 2.closure.$n nix "$r" "closure of the top path ($((n + 1)) paths)" -- nix-store -qR "$top"
      expect "2.closure.$n nix rep$r: closure size" "$(grep -c "^/" "$LASTLOG")" "$((n + 1))"
      drop n2.$n.$r

      use_root s2.$n.$r
      info=$D/reg$n.slapstore.info
      top=$("$PYTHON" "$STORE_GRAPH" graph "$GEN_PY" "$ROOT/store" "$n" "$FANOUT" "$info" top)
      timeit 2.register.$n slapstore "$r" "register $n paths + refs (fanout $FANOUT)" -- \
        bash -c "$S --root $ROOT store register < $info"
      timeit 2.closure.$n slapstore "$r" "closure of the top path ($((n + 1)) paths)" -- \
        "$S" --root "$ROOT" path-info --closure "$top"
      expect "2.closure.$n slapstore rep$r: closure size" "$(grep -c "^/" "$LASTLOG")" "$((n + 1))"
      expect "2.register.$n slapstore rep$r: verify" \
        "$("$S" --root "$ROOT" verify 2>&1 | tail -n 1)" "$((n + 1)) paths checked, 0 problems"
      drop s2.$n.$r
    done
  done
}

# ---------------------------------------------------------------- 3+4: the 487 MiB tree as one path
test_3() {
  local r tree=$D/tree
  for r in $(seq 1 "$REPS"); do
    use_store n3.$r
    timeit 3.add_tree nix "$r" "add the tree as one path, empty store" -- nix-store --add "$tree"
    timeit 4.readd_tree nix "$r" "re-add the same tree (already valid: hash only)" -- nix-store --add "$tree"
    timeit 4.verify_contents nix "$r" "verify --check-contents (the store of 3)" -- nix-store --verify --check-contents
    drop n3.$r

    use_root s3.$r
    timeit 3.add_tree slapstore "$r" "add the tree as one path, empty store" -- "$S" --root "$ROOT" store add "$tree"
    local first; first=$(tail -n 1 "$LASTLOG")
    timeit 4.readd_tree slapstore "$r" "re-add the same tree (already valid: hash only)" -- "$S" --root "$ROOT" store add "$tree"
    expect "4.readd_tree slapstore rep$r: same path" "$(tail -n 1 "$LASTLOG")" "$first"
    timeit 4.verify_contents slapstore "$r" "verify --check-contents (the store of 3)" -- \
      "$S" --root "$ROOT" verify --check-contents
    expect "4.verify_contents slapstore rep$r: problems found" "$(tail -n 1 "$LASTLOG" | grep -o '[0-9]* problems')" "0 problems"
    drop s3.$r

    # 3b: the same with the write-back included (slapstore syncs the file system before it
    # commits; nix-store --add leaves the copy's data to the kernel's write-back)
    use_store n3s.$r
    timeit 3.add_tree_sync nix "$r" "add the tree, then sync" -- bash -c "nix-store --add $tree > /dev/null && sync"
    drop n3s.$r
    use_root s3s.$r
    timeit 3.add_tree_sync slapstore "$r" "add the tree, then sync" -- \
      bash -c "$S --root $ROOT store add $tree > /dev/null && sync"
    drop s3s.$r
  done
}

# ---------------------------------------------------------------- 5: -j1 vs -j2 on independent parts
test_5() {
  # calibrate the busy loop of /bin/sh (what plone.recipe.command runs) to ~BUSY_SECONDS a part
  local probe=300000 a b loops r
  a=$EPOCHREALTIME
  /bin/sh -c "i=0; while [ \$i -lt $probe ]; do i=\$((i+1)); done"
  b=$EPOCHREALTIME
  loops=$(awk -v a="$a" -v b="$b" -v p="$probe" -v s="$BUSY_SECONDS" 'BEGIN{printf "%d", p*s/(b-a)}')
  say "busy loop: $loops iterations of /bin/sh ~ ${BUSY_SECONDS}s"
  local cfg=$D/parallel/software.cfg
  mkdir -p "$D/parallel"
  "$PYTHON" "$STORE_GRAPH" parallel "$cfg" "$PAR_PARTS" "$loops"
  # the machine's own ceiling: the same loops run by /bin/sh, one at a time and two at a time
  local loop="i=0; while [ \$i -lt $loops ]; do i=\$((i+1)); done"
  for r in $(seq 1 "$REPS"); do
    timeit 5.sh_p1 sh "$r" "the $PAR_PARTS loops, plain /bin/sh, one at a time" -- \
      bash -c "seq $PAR_PARTS | xargs -P1 -I{} /bin/sh -c '$loop'"
    use_root s5.j1.$r
    timeit 5.build_j1 slapstore "$r" "build -j1, $PAR_PARTS independent ~${BUSY_SECONDS}s parts" -- \
      "$S" --root "$ROOT" -j1 build "$cfg"
    drop s5.j1.$r
    timeit 5.sh_p2 sh "$r" "the $PAR_PARTS loops, plain /bin/sh, two at a time" -- \
      bash -c "seq $PAR_PARTS | xargs -P2 -I{} /bin/sh -c '$loop'"
    use_root s5.j2.$r
    timeit 5.build_j2 slapstore "$r" "build -j2, $PAR_PARTS independent ~${BUSY_SECONDS}s parts" -- \
      "$S" --root "$ROOT" -j2 build "$cfg"
    drop s5.j2.$r
  done
}

# ---------------------------------------------------------------- 6: ERP5-sized graph
test_6() {
  local cfg=$D/erp5/software.cfg i built
  mkdir -p "$D/erp5"
  "$PYTHON" "$STORE_GRAPH" erp5 "$cfg" "$ERP5_PARTS" "$ERP5_DEPS"
  use_root s6
  # the sandbox alone: as root, builds run as build users unless told not to (below)
  mkdir -p "$ROOT/etc"
  printf 'build-users = false\n' > "$ROOT/etc/slapstore.toml"
  timeit 6.build_first slapstore 1 "first build of $ERP5_PARTS parts (default -j), build-users = false" -- "$S" --root "$ROOT" build "$cfg"
  for i in $(seq 1 "$QUICK_RUNS"); do
    timeit 6.plan slapstore "$i" "plan, $ERP5_PARTS parts, all built" -- "$S" --root "$ROOT" plan "$cfg"
    timeit 6.noop_build slapstore "$i" "no-op build, $ERP5_PARTS parts, all built" -- "$S" --root "$ROOT" build "$cfg"
  done
  built=$("$S" --root "$ROOT" build --json "$cfg" 2>/dev/null |
    "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["built"]))' 2>&1 || true)
  expect "6.noop_build: parts built by a no-op build" "$built" 0
  expect "6.plan: derivations planned" "$(grep -c "/store/" "$LOG/6.plan.slapstore.1.log" || true)" "$((ERP5_PARTS + 1))"
  drop s6
  # the build sandbox's cost: the same first build without it
  use_root s6n
  timeit 6.build_first_nosandbox slapstore 1 "first build of $ERP5_PARTS parts, --no-sandbox" -- "$S" --root "$ROOT" --no-sandbox build "$cfg"
  drop s6n
  # and with build users (as root only; the default there): each build also takes a pool
  # user's lock and gives its output to the user before its command and back to root after
  if [ "$(id -u)" = 0 ]; then
    use_root s6u
    timeit 6.build_first_buildusers slapstore 1 "first build of $ERP5_PARTS parts, build users (the default pool)" -- "$S" --root "$ROOT" build "$cfg"
    drop s6u
  fi
}

# ---------------------------------------------------------------- main
FS=$(df -T "$BENCH_DIR" | awk 'NR==2{print $2}')
say "$(nix-store --version) | slapstore $SLAPSTORE_REV | $(uname -r) | $(nproc) CPU | fs: $FS | REPS=$REPS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
gen_data
for t in $ONLY; do
  say "load average before test $t: $(cut -d' ' -f1-3 /proc/loadavg)"
  case $t in
    1) test_1 ;; 2) test_2 ;; 3|4) [ "${t3_done:-0}" = 1 ] || { test_3; t3_done=1; } ;;
    5) test_5 ;; 6) test_6 ;;
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
row() {  # row TEST LABEL
  has "$1" nix || has "$1" slapstore || return 0
  local a b; a=$(median "$1" nix); b=$(median "$1" slapstore)
  echo "| $2 | $(fmt "$a") ($(runs "$1" nix)) | $(fmt "$b") ($(runs "$1" slapstore)) | $(ratio "$a" "$b") |"
}
only() {  # only TEST LABEL [EXTRA]
  has "$1" slapstore || return 0
  echo "| $2 | $(fmt "$(median "$1" slapstore)") ($(runs "$1" slapstore)) | ${3:-} |"
}
mibs() { awk -v m="$1" -v s="$2" 'BEGIN{ if (s=="NA"||s+0==0) print "NA"; else printf "%.0f MiB/s", m/s }'; }
{
  echo "# slapstore store vs Nix — $(date -u +%FT%TZ)"
  echo
  echo "$(nix-store --version 2>/dev/null || echo "Nix not run"); slapstore $SLAPSTORE_REV ($SLAPSTORE of $SLAPSTORE_MTIME, run from a copy)${BUILD_NOTE:+; $BUILD_NOTE}."
  echo "host: $(uname -r), $(nproc) CPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)),"\
       "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $BENCH_DIR on $FS"\
       "($(findmnt -no SOURCE,OPTIONS -T "$BENCH_DIR" 2>/dev/null | head -n1))."
  echo "REPS=$REPS, SETTLE_SLEEP=$SETTLE_SLEEP, DROP_CACHES=$DROP_CACHES; runs alternated Nix, slapstore;"\
       "medians over successful runs (ok/total in brackets); whole script ${ELAPSED} s."
  echo "Load average (1/5/15 min) at start: $LOAD_START, at end: $LOAD_END (other work on the machine skews the figures)."
  echo "Tree: $TREE_FILES files, $TREE_MIB MiB. Graph: gen.py graph, fanout $FANOUT."
  echo
  echo "| test | Nix median | slapstore median | ratio (Nix/slapstore) |"
  echo "|---|---:|---:|---:|"
  for n in $N_LIST; do row 1.add_many.$n "1. add $n small files as $n paths"; done
  for n in $N_LIST; do row 2.register.$n "2. register $n paths with references"; done
  for n in $N_LIST; do row 2.closure.$n "2b. closure query of the top path, $((n + 1)) paths (\`-qR\` / \`path-info --closure\`)"; done
  row 3.add_tree "3. add the $TREE_MIB MiB $TREE_FILES-file tree as one path"
  row 3.add_tree_sync "3b. same, then \`sync\` (write-back of the copy included)"
  row 4.readd_tree "4. no-op re-add of the tree (Nix for reference)"
  row 4.verify_contents "4. verify --check-contents of the store of 3 (Nix for reference)"
  echo
  echo "slapstore only:"
  echo
  echo "| test | slapstore median | |"
  echo "|---|---:|---|"
  if has 3.add_tree slapstore; then
    only 3.add_tree "3. add tree" "$(mibs "$TREE_MIB" "$(median 3.add_tree slapstore)")"
    only 4.readd_tree "4. no-op re-add of the tree" "$(mibs "$TREE_MIB" "$(median 4.readd_tree slapstore)")"
    only 4.verify_contents "4. verify --check-contents" "$(mibs "$TREE_MIB" "$(median 4.verify_contents slapstore)")"
  fi
  if has 5.build_j1 slapstore; then
    only 5.build_j1 "5. build -j1, $PAR_PARTS independent CPU-bound parts (~${BUSY_SECONDS} s each)"
    only 5.build_j2 "5. build -j2, same" "speed-up -j1/-j2: $(ratio "$(median 5.build_j1 slapstore)" "$(median 5.build_j2 slapstore)")x ($(nproc) CPU)"
    echo "| 5. the machine's ceiling: the same loops in plain /bin/sh, 1 then 2 at a time | $(fmt "$(median 5.sh_p1 sh)") / $(fmt "$(median 5.sh_p2 sh)") | speed-up $(ratio "$(median 5.sh_p1 sh)" "$(median 5.sh_p2 sh)")x |"
  fi
  only 6.build_first "6. first build of $ERP5_PARTS parts (0..$ERP5_DEPS deps each), one run, \`build-users = false\`" \
    "$(awk -v s="$(median 6.build_first slapstore)" -v n="$ERP5_PARTS" 'BEGIN{ if (s!="NA") printf "%.1f ms/part", s*1000/n }')"
  only 6.build_first_nosandbox "6. the same first build without the build sandbox (\`--no-sandbox\`)" \
    "$(awk -v a="$(median 6.build_first slapstore)" -v b="$(median 6.build_first_nosandbox slapstore)" -v n="$ERP5_PARTS" 'BEGIN{ if (a!="NA" && b!="NA") printf "sandbox: %+.1f ms/part", (a-b)*1000/n }')"
  only 6.build_first_buildusers "6. the same first build as build users (the default as root)" \
    "$(awk -v a="$(median 6.build_first_buildusers slapstore)" -v b="$(median 6.build_first slapstore)" -v n="$ERP5_PARTS" 'BEGIN{ if (a!="NA" && b!="NA") printf "build users: %+.1f ms/part", (a-b)*1000/n }')"
  only 6.plan "6. plan of $ERP5_PARTS parts, all built (median of $QUICK_RUNS)"
  only 6.noop_build "6. no-op build of $ERP5_PARTS parts (median of $QUICK_RUNS)"
  echo
  if [ -s "$ODD" ]; then
    echo "Odd (failures and failed checks):"
    echo
    sed 's/^/    /' "$ODD"
  else
    echo "No failures; all checks passed (paths printed, closure sizes, verify 0 problems, no-op build built nothing)."
  fi
} > "$SUM"
cat "$SUM"

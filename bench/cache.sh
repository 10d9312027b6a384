#!/usr/bin/env bash
# Binary cache: (1) installing a release from a cache against building it (the Lua example, a
# real compile), and (2) copying the same data out of a `file://` cache with slapstore
# (`cache pull`) and with Nix 2.8 (`nix copy --from file://...`), alternated, on throwaway stores.
#
#   bash bench/cache.sh              # REPS=3; the 487 MiB tree of ../shared/anchors/nixbench
#   REPS=1 TREE=small bash bench/cache.sh
#
# Needs nix-bin (installed when missing) and the Lua tarball (fetched from Debian's source
# packages by tests/fixtures/debian-orig.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/slapstore-bench-cache}
SHARED=${SHARED:-../shared}
cargo build --release --quiet
mkdir -p "$BENCH_DIR"
S="$BENCH_DIR/slapstore.bin"; cp target/release/slapstore "$S"
command -v nix-store >/dev/null || apt-get install -y -qq nix-bin >/dev/null
settle() { sync; sleep "${SETTLE_SLEEP:-1}"; }
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}'; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3

# ---- 1. the Lua example: build from source against fetch from a cache, same root path
tarball=$(bash tests/fixtures/debian-orig.sh lua5.4 target/test-sources)
root="$BENCH_DIR/root"; cache="$BENCH_DIR/lua-cache"
build_t=(); fetch_t=()
for r in $(seq 1 "$REPS"); do
    rm -rf "$root" "$cache"
    pub=$("$S" --root "$root" key generate --name bench)
    "$S" --root "$root" add-source "$tarball" > /dev/null
    settle
    a=$(now); "$S" --root "$root" -q build --offline examples/lua/software.cfg > /dev/null; b=$(now)
    build_t+=("$(echo "$b - $a" | bc)")
    "$S" --root "$root" cache push "$cache" examples/lua/software.cfg > /dev/null
    rm -rf "$root"; settle
    a=$(now); "$S" --root "$root" -q --substituter "file://$cache" --trusted-key "$pub" build --offline examples/lua/software.cfg > /dev/null; b=$(now)
    fetch_t+=("$(echo "$b - $a" | bc)")
    ls "$root/var/log" | grep -q . && { echo "a build ran while fetching from the cache" >&2; exit 1; }
done
bm=$(printf '%s\n' "${build_t[@]}" | median); fm=$(printf '%s\n' "${fetch_t[@]}" | median)
echo "lua release: built from source ${bm} s, installed from a file:// cache ${fm} s ($(echo "scale=1; $bm / $fm" | bc)x)"

# ---- 2. nix copy --from file:// against slapstore cache pull, the same tree
data="$BENCH_DIR/data"
if [ "${TREE:-big}" = small ]; then
    [ -d "$data/tree" ] || $py "$SHARED/anchors/nixbench/gen.py" tree "$data/tree" 2000 8192 1 16
else
    [ -d "$data/tree" ] || $py "$SHARED/anchors/nixbench/gen.py" tree "$data/tree" 10000 8192 4 112
fi
bytes=$(du -sb "$data/tree" | cut -f1)
export NIX_CONF_DIR="$BENCH_DIR/nixconf" NIX_USER_CONF_FILES="$BENCH_DIR/nixconf/empty.conf" NIX_REMOTE=local
mkdir -p "$NIX_CONF_DIR"; : > "$NIX_USER_CONF_FILES"
printf 'sandbox = false\nsubstituters =\nbuild-users-group =\nfsync-metadata = true\nexperimental-features = nix-command\n' > "$NIX_CONF_DIR/nix.conf"
export HOME="$BENCH_DIR/home"; mkdir -p "$HOME"
nix_t=(); ours_t=()
for r in $(seq 1 "$REPS"); do
    d="$BENCH_DIR/nix"; rm -rf "$d" "$BENCH_DIR/nixcache"
    export NIX_STORE_DIR="$d/store" NIX_STATE_DIR="$d/var" NIX_LOG_DIR="$d/log"
    nix-store --init
    p=$(nix-store --add "$data/tree")
    nix copy --to "file://$BENCH_DIR/nixcache" "$p"
    rm -rf "$d"; nix-store --init
    settle
    a=$(now); nix copy --from "file://$BENCH_DIR/nixcache" --no-check-sigs "$p"; b=$(now)
    nix_t+=("$(echo "$b - $a" | bc)")
    rm -rf "$d"
    root="$BENCH_DIR/ours"; rm -rf "$root" "$BENCH_DIR/ourcache"
    pub=$("$S" --root "$root" key generate --name bench)
    q=$("$S" --root "$root" store add "$data/tree")
    "$S" --root "$root" cache push "$BENCH_DIR/ourcache" "$q" > /dev/null
    rm -rf "$root"; settle
    a=$(now); "$S" --root "$root" cache pull "$q" --from "file://$BENCH_DIR/ourcache" --trusted-key "$pub" > /dev/null; b=$(now)
    ours_t+=("$(echo "$b - $a" | bc)")
    "$S" --root "$root" verify --check-contents | grep -q " 0 problems" || { echo "pulled store does not verify" >&2; exit 1; }
    rm -rf "$root"
done
nm=$(printf '%s\n' "${nix_t[@]}" | median); om=$(printf '%s\n' "${ours_t[@]}" | median)
echo "copy a $((bytes / 1048576)) MiB tree from a file:// cache: nix copy --from ${nm} s, slapstore cache pull ${om} s ($(echo "scale=2; $nm / $om" | bc)x)"

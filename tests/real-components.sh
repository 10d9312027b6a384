#!/usr/bin/env bash
# Build the SlapOS corpus components whose whole source closure Debian carries byte for byte:
# each component profile `component/X/buildout.cfg`, unchanged, built offline (`--offline`, in a
# network namespace of its own) inside the build sandbox, from the genuine upstream tarballs that
# Debian's source packages ship as `*.orig.tar.*`, put into the download cache with `add-source`
# (../shared/real-sources.md). Prints `built` or `failed` per component, with the failing log's
# tail, then the counts.
#
#   bash tests/real-components.sh                  # every component of tests/fixtures/real-sources.tsv
#   bash tests/real-components.sh lzo zip          # only these
#   KEEP=dir bash tests/real-components.sh         # keep the store root in dir (else a mktemp)
#   bash tests/real-components.sh discover         # regenerate tests/fixtures/real-sources.tsv
#
# - tests/fixtures/real-sources.tsv is the mapping (component, part, url, md5, Debian package,
#   version, orig file) of every remote source of those components, so a run never searches.
#   `discover` remakes it: one private `apt-get update` of the deb-src indexes (the machine's
#   Debian suite plus $SUITES, default "trixie sid": the corpus pins newer releases than
#   bookworm), every orig tarball's MD5 from the signed Sources indexes, and
#   tests/real-sources.py, which plans (offline) each component profile of the corpus and lists
#   its closure's remote sources.
# - Tarballs are fetched once into target/test-sources (tests/fixtures/debian-orig.sh, which
#   checks them against the signed index); a run with them present needs no network at all.
# - One store root for every component: a dependency built once serves the others.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${CORPUS:-../shared/corpus}"
if [ ! -f "$corpus/profiles.txt" ]; then
    echo "real-components.sh: no corpus at $corpus (set CORPUS=...)" >&2
    exit 1
fi
corpus="$(cd "$corpus" && pwd)"
table=tests/fixtures/real-sources.tsv
suites="${SUITES:-trixie sid}"
cargo build --release --quiet
bin="$PWD/target/release/slapstore"

# Offline: a network namespace of its own (as root), or a user namespace with one.
if unshare --net true 2>/dev/null; then
    offline=(unshare --net --)
elif unshare --user --map-root-user --net true 2>/dev/null; then
    offline=(unshare --user --map-root-user --net --)
else
    echo "real-components.sh: cannot make a network namespace (unshare --net); builds run with --offline only" >&2
    offline=()
fi

if [ "${1:-}" = discover ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    mirror=""
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        mirror="$(grep -oE 'https?://[^[:space:]]*/debian/?([[:space:]]|$)' "$f" | head -n 1 | tr -d '[:space:]')"
        [ -n "$mirror" ] && break
    done
    [ -n "$mirror" ] || { echo "real-components.sh: no Debian mirror in /etc/apt" >&2; exit 1; }
    own="$(. /etc/os-release && echo "$VERSION_CODENAME")"
    for suite in $own $suites; do echo "deb-src $mirror $suite main"; done >"$work/sources.list"
    opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Acquire::Languages=none")
    apt-get "${opts[@]}" -q update >&2
    # md5, package, version, file of every orig tarball the indexes list
    for f in "$work"/lists/*_Sources*; do /usr/lib/apt/apt-helper cat-file "$f"; done | awk '
        /^Package: / { pkg = $2 }
        /^Version: / { ver = $2 }
        /^Files:/ { files = 1; next }
        /^[^ ]/ { files = 0 }
        files && $3 ~ /\.orig(-[A-Za-z0-9-]+)?\.tar\.[a-z0-9]+$/ { print $1 "\t" pkg "\t" ver "\t" $3 }
    ' | sort -u >"$work/orig-md5.tsv"
    "${offline[@]}" python3 tests/real-sources.py "$bin" "$corpus" "$work/orig-md5.tsv" >"$work/table"
    mv "$work/table" "$table"
    echo "real-components.sh: wrote $table" >&2
    exit 0
fi

root="${KEEP:-}"
if [ -z "$root" ]; then
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
fi
mkdir -p "$root"
sources="$PWD/target/test-sources"
mkdir -p "$sources"

if [ $# -gt 0 ]; then
    components=("$@")
else
    mapfile -t components < <(grep -v '^#' "$table" | cut -f1 | awk '!seen[$0]++')
fi

built=0
failed=0
for c in "${components[@]}"; do
    rows="$(grep -v '^#' "$table" | awk -F'\t' -v c="$c" '$1 == c')"
    if [ -z "$rows" ]; then
        echo "real-components.sh: $c is not in $table" >&2
        exit 2
    fi
    # fetch and add every source of the closure
    why=""
    while IFS=$'\t' read -r _ part _url md5 package version _orig; do
        if ! tarball="$(DEBIAN_ORIG_SUITES="$suites" bash tests/fixtures/debian-orig.sh \
            "$package=$version" "$sources" 2>"$root/fetch.err")"; then
            why="fetching $package=$version for [$part]: $(tail -n 3 "$root/fetch.err")"
            break
        fi
        if ! "$bin" --root "$root" add-source "$tarball" >"$root/add.out" 2>&1 ||
            ! grep -q "md5:$md5" "$root/add.out"; then
            why="$tarball for [$part] is not md5 $md5: $(cat "$root/add.out")"
            break
        fi
    done <<<"$rows"
    if [ -n "$why" ]; then
        echo "failed $c (source): $why"
        failed=$((failed + 1))
        continue
    fi
    start=$(date +%s.%N)
    if "${offline[@]}" "$bin" --root "$root" build --offline --quiet \
        "$corpus/slapos/component/$c/buildout.cfg" >"$root/$c.out" 2>"$root/$c.err"; then
        end=$(date +%s.%N)
        printf 'built  %-14s %6.1f s  %s\n' "$c" "$(echo "$end - $start" | bc)" "$(tail -n 1 "$root/$c.out")"
        built=$((built + 1))
    else
        end=$(date +%s.%N)
        printf 'failed %-14s %6.1f s\n' "$c" "$(echo "$end - $start" | bc)"
        tail -n 25 "$root/$c.err" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
echo "real-components.sh: $built built, $failed failed (of ${#components[@]})"
[ "$failed" = 0 ]

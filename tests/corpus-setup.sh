# Sourced by the corpus scripts (plan-corpus.sh, instance-corpus.sh) after `cd` to the repository:
# sets `corpus` (../shared/corpus, or $CORPUS, absolute), builds the release binary into `bin`,
# and sets `offline` to the command prefix that runs without a network: a network namespace of
# its own (as root), or a user namespace with one; empty (with a warning) when neither works.
# `$script` names the caller in messages.
corpus="${CORPUS:-../shared/corpus}"
if [ ! -f "$corpus/profiles.txt" ]; then
    echo "$script: no corpus at $corpus (set CORPUS=...)" >&2
    exit 1
fi
corpus="$(cd "$corpus" && pwd)"
cargo build --release --quiet
bin="$PWD/target/release/slapstore"
if unshare --net true 2>/dev/null; then
    offline=(unshare --net --)
elif unshare --user --map-root-user --net true 2>/dev/null; then
    offline=(unshare --user --map-root-user --net --)
else
    echo "$script: cannot make a network namespace (unshare --net); runs online" >&2
    offline=()
fi

#!/usr/bin/env bash
# Installs, with apt-get, what slapstore's examples and test suite need and the machine lacks
# (on a Debian machine that has the Rust toolchain); says what it installs, and nothing when all
# is there; and the pinned uv (egg builds' installer) from the package index. Run as root, or
# as a user who may `sudo`. README.md's setup and .ci/run use it.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have python3 || missing+=(python3)   # runs Python code found in profiles
have cc || missing+=(gcc)            # mimalloc is built from C; the C examples and cmmi tests
have make || missing+=(make)         # cmmi builds in the tests and examples
have patch || missing+=(patch)       # cmmi's `patches`
have md5sum || missing+=(coreutils)
have tar || missing+=(tar)           # the tests make archives with GNU tar's every format
have nginx || missing+=(nginx)       # serves a binary cache in tests/cache.rs
have git || missing+=(git)           # gitclone parts; tests/gitclone.rs makes repositories
have supervisord || missing+=(supervisor)  # runs instances' services (tests/services.rs)
# slapos.cookbook:postgres's cluster and redis.server's server (tests/cookbook_servers.rs); Debian
# keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have initdb || missing+=(postgresql)
have redis-server || missing+=(redis-server)
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    if [ ${#sudo[@]} -gt 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "error: not root and no sudo: install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Jinja2, for the `python3` on PATH (which may be a version manager's, not Debian's: Debian's
# python3-jinja2 only serves Debian's python3): renders the templates minijinja cannot
# (store/src/recipes/jinja2.rs); from the package index at the version SlapOS pins, else Debian's
if ! python3 -c 'import jinja2' 2>/dev/null; then
    echo "installing: Jinja2 for $(command -v python3)" >&2
    python3 -m pip install -q --disable-pip-version-check Jinja2==3.1.6 2>/dev/null ||
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3-jinja2 >/dev/null
    python3 -c 'import jinja2' || { echo "error: python3 cannot import jinja2" >&2; exit 1; }
fi

# uv, the installer of egg builds, at the version store/src/recipes/egg_uv.rs pins (egg builds
# find it on their PATH; without it they install with pip): its wheel from the package index,
# the program taken out of it into /usr/local/bin
uv_version=$(sed -n 's/^pub const UV_VERSION: &str = "\(.*\)";/\1/p' \
    "$(dirname "$0")/../store/src/recipes/egg_uv.rs")
if [ "$(/usr/local/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
    echo "installing: uv $uv_version into /usr/local/bin" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$tmp" "uv==$uv_version"
    python3 - "$tmp" "$uv_version" <<'PY'
import glob, sys, zipfile
tmp, version = sys.argv[1:]
with zipfile.ZipFile(glob.glob(f"{tmp}/uv-{version}-*.whl")[0]) as z:
    with open(f"{tmp}/uv", "wb") as out:
        out.write(z.read(f"uv-{version}.data/scripts/uv"))
PY
    "${sudo[@]}" install -m 0755 "$tmp/uv" /usr/local/bin/uv
fi

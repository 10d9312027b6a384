#!/usr/bin/env bash
# Installs, with apt-get, what slapstore's examples and test suite need and the machine lacks
# (on a Debian machine that has the Rust toolchain); says what it installs, and nothing when all
# is there. Run as root, or as a user who may `sudo`. README.md's setup and .ci/run use it.
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
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "error: not root and no sudo: install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
        exit 1
    }
    sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

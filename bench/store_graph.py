#!/usr/bin/env python3
"""Data generators for bench/store.sh (slapstore's store against real Nix 2.8).

Sub-commands:
  graph GEN_PY STOREDIR N FANOUT OUT_INFO ROOTNAME
      The same DAG as the Nix harness's `gen.py graph` (same seed, shape and file contents: it
      is gen.py's own code that writes it, into a scratch directory next to STOREDIR), with
      every store name translated to slapstore's form: gen.py's 32 characters of Nix base32
      become 32 characters of RFC 4648 lowercase base32 (a-z2-7), namely the base32 of the first
      20 bytes of sha256(old hash). The trees are renamed into STOREDIR, the `share/refs` and
      `refs` files and the `--register-validity` input (OUT_INFO) are rewritten with the new
      names. Prints the top path, as gen.py does.
  parallel OUT_CFG PARTS LOOPS
      A profile of PARTS independent `plone.recipe.command` parts, each a CPU-bound busy loop
      of LOOPS iterations of /bin/sh arithmetic (a different `echo` per part, so that every
      part has its own hash).
  erp5 OUT_CFG PARTS MAX_DEPS
      An ERP5-sized profile: PARTS `plone.recipe.command` parts, part i referring to 0..MAX_DEPS
      earlier parts through `${depJ:location}` (deterministic, seed 6), all listed in `parts`.
"""
import base64
import hashlib
import importlib.util
import os
import random
import shutil
import sys


def translate(old_hash):
    digest = hashlib.sha256(old_hash.encode()).digest()[:20]
    return base64.b32encode(digest).decode().lower()  # 160 bits: 32 characters, no padding


def cmd_graph(gen_py, storedir, n, fanout, out_info, rootname):
    spec = importlib.util.spec_from_file_location("nixbench_gen", gen_py)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    storedir = os.path.abspath(storedir)
    scratch = storedir.rstrip("/") + ".graph-scratch"  # same file system: renames are cheap
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    os.makedirs(storedir, exist_ok=True)
    scratch_info = out_info + ".nix"
    # gen.py prints the top path; keep our stdout for the translated one
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")
    try:
        gen.cmd_graph(scratch, n, fanout, scratch_info, rootname)
    finally:
        sys.stdout.close()
        sys.stdout = stdout

    names = {}  # old full path -> new full path
    for entry in os.listdir(scratch):
        old_hash, rest = entry[:32], entry[32:]
        new = os.path.join(storedir, translate(old_hash) + rest)
        names[os.path.join(scratch, entry)] = new
    if len(set(names.values())) != len(names):
        sys.exit("store_graph: hash translation collided")

    def rewrite(text):
        return "\n".join(names.get(line, line) for line in text.split("\n"))

    for old, new in names.items():
        for refs in (os.path.join(old, "share", "refs"), os.path.join(old, "refs")):
            if os.path.exists(refs):
                with open(refs) as f:
                    text = f.read()
                with open(refs, "w") as f:
                    f.write(rewrite(text))
        os.rename(old, new)
    os.rmdir(scratch)

    with open(scratch_info) as f:
        info = rewrite(f.read())
    os.unlink(scratch_info)
    with open(out_info, "w") as f:
        f.write(info)
    # the top path is the last path of the input (gen.py writes it last)
    blocks = info.split("\n")
    top, i = None, 0
    while i < len(blocks) and blocks[i]:
        top = blocks[i]
        i += 2
        count = int(blocks[i])
        i += 1 + count
    print(top)


def cmd_parallel(out_cfg, parts, loops):
    names = ["busy%d" % k for k in range(parts)]
    with open(out_cfg, "w") as f:
        f.write("[buildout]\nparts = %s\n" % " ".join(names))
        for k, name in enumerate(names):
            f.write(
                "\n[%s]\nrecipe = plone.recipe.command\n"
                "command = i=0; while [ $i -lt %d ]; do i=$((i+1)); done; echo %s $i > $out/x\n"
                % (name, loops, name)
            )


def cmd_erp5(out_cfg, parts, max_deps, seed=6):
    r = random.Random(seed)
    with open(out_cfg, "w") as f:
        f.write("[buildout]\nparts =\n")
        for i in range(parts):
            f.write("  dep%d\n" % i)
        for i in range(parts):
            k = min(i, r.randint(0, max_deps))
            deps = sorted(r.sample(range(i), k)) if k else []
            if deps:
                command = "echo %s > $out/x" % " ".join("${dep%d:location}" % j for j in deps)
            else:
                command = "echo leaf %d > $out/x" % i
            f.write("\n[dep%d]\nrecipe = plone.recipe.command\ncommand = %s\n" % (i, command))


if __name__ == "__main__":
    c, a = sys.argv[1], sys.argv[2:]
    if c == "graph":
        cmd_graph(a[0], a[1], int(a[2]), int(a[3]), a[4], a[5])
    elif c == "parallel":
        cmd_parallel(a[0], int(a[1]), int(a[2]))
    elif c == "erp5":
        cmd_erp5(a[0], int(a[1]), int(a[2]))
    else:
        sys.exit("unknown sub-command " + c)

#!/usr/bin/env python3
"""Regenerate tests/fixtures/real-sources.tsv: every remote source of every corpus component
profile that plans, and the Debian orig tarball that carries it byte for byte, if any.

    python3 tests/real-sources.py SLAPSTORE CORPUS DEBIAN-ORIG-MD5S > tests/fixtures/real-sources.tsv

(`bash tests/real-components.sh discover` runs it.) Only the components whose every row matches
are written; the sources that keep the most others out are printed on stderr.

- SLAPSTORE is the binary; CORPUS the shared corpus (its profiles.txt and slapos/);
  DEBIAN-ORIG-MD5S a TSV `md5 package version file` of every *.orig*.tar.* that Debian's
  Sources indexes list (tests/real-components.sh discover makes it from a private apt update).
- For each `component/*/buildout.cfg` of profiles.txt, `plan --json` gives the parts to build
  (the closure, dependencies included) and `eval --json` their options: each part's `url` with its
  `md5sum`, and each remote entry of `patches` (`URL#MD5`), is one row. A part whose recipe needs
  something Debian does not carry (a git clone, an egg) is a row with the recipe in place of a
  checksum, so the component never counts as obtainable.
- Matching is by MD5 only (the checksum the profile pins): a row is matched when a Debian orig
  tarball has exactly that MD5, whatever its name.
- Profiles are planned offline (the caller runs this under `unshare --net`).
"""

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

REMOTE = ("http://", "https://", "ftp://")
# recipes whose parts bring inputs no Debian orig tarball can stand for
UNOBTAINABLE = ("gitclone", "egg", "pip")


def run_json(argv):
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def sources(binary, root, corpus, profile):
    """The rows of one component, or None when it does not plan."""
    path = f"{corpus}/slapos/{profile}"
    plan = run_json([binary, "--root", root, "plan", "--json", path])
    if plan is None:
        return None
    resolved = run_json([binary, "--root", root, "eval", "--json", path])
    if resolved is None:
        return None
    component = profile.split("/")[1]
    rows = []
    for drv in plan:
        part, recipe = drv["part"], drv["recipe"]
        if recipe == "release":
            continue
        options = resolved.get(part, {})
        if any(word in recipe for word in UNOBTAINABLE):
            rows.append((component, part, options.get("repository", "-"), recipe))
            continue
        url = options.get("url", "")
        if url.startswith(REMOTE):
            rows.append((component, part, url, options.get("md5sum", "") or "-"))
        for line in options.get("patches", "").split():
            if line.startswith(REMOTE):
                url, _, md5 = line.partition("#")
                rows.append((component, part, url, md5 or "-"))
    return rows


def main():
    binary, corpus, md5s = sys.argv[1:4]
    debian = {}
    with open(md5s) as f:
        for line in f:
            md5, package, version, name = line.rstrip("\n").split("\t")
            debian.setdefault(md5, (package, version, name))
    with open(f"{corpus}/profiles.txt") as f:
        profiles = [
            p.strip()
            for p in f
            if p.startswith("component/") and p.strip().endswith("/buildout.cfg")
        ]
    with tempfile.TemporaryDirectory() as root:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda p: sources(binary, root, corpus, p), profiles))
    planned = [rows for rows in results if rows is not None]
    urls = {(url, md5) for rows in planned for _, _, url, md5 in rows}
    matched = {(url, md5) for url, md5 in urls if md5 in debian}
    complete = [rows for rows in planned if rows and all(r[3] in debian for r in rows)]
    print("# component\tpart\turl\tmd5\tdebian-package\tdebian-version\torig-file")
    print("# made by tests/real-components.sh discover: the components whose every remote source")
    print(f"# is a Debian orig tarball. {len(planned)} of {len(profiles)} component profiles plan;")
    print(f"# {len(matched)} of their {len(urls)} remote sources match; {len(complete)} closures do")
    for rows in complete:
        for component, part, url, md5 in rows:
            print("\t".join((component, part, url, md5) + debian[md5]))
    # what keeps the others out: the unmatched sources that block the most components
    blockers = {}
    for rows in planned:
        for _, part, url, md5 in {r for r in rows if r[3] not in debian}:
            blockers.setdefault((part, url), set()).add(rows[0][0])
    top = sorted(blockers.items(), key=lambda kv: -len(kv[1]))[:15]
    print(f"real-sources.py: {len(planned)} of {len(profiles)} component profiles plan, "
          f"{len(matched)}/{len(urls)} sources match, {len(complete)} closures complete; "
          "most blocking unmatched sources:", file=sys.stderr)
    for (part, url), components in top:
        print(f"  {len(components):4} {part} {url}", file=sys.stderr)


if __name__ == "__main__":
    main()

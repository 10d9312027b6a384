# Runs one of slapos.recipe.cmmi's Python hooks (`FILE#MD5:FUNCTION`) for slapstore's cmmi
# builder, as the recipe's `call_script` does: the file is loaded as module `script` and
# FUNCTION(options, buildout, environment) is called, or FUNCTION(options, buildout) when it
# does not take the environment. Argument: a JSON file with `file`, `function`, `part`,
# `options` (the part's options, real values), `buildout` (`[buildout]`'s directories).
import importlib.util
import json
import os
import sys

with open(sys.argv[1]) as f:
    spec = json.load(f)
options = spec["options"]
buildout = {"buildout": spec["buildout"], spec["part"]: options}
loader = importlib.util.spec_from_file_location("script", spec["file"])
module = importlib.util.module_from_spec(loader)
loader.loader.exec_module(module)
script = getattr(module, spec["function"].strip())
try:
    script(options, buildout, dict(os.environ))
except TypeError:
    # as slapos.recipe.cmmi: hooks that do not take the environment
    script(options, buildout)

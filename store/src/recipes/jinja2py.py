"""slapstore's Jinja2 renderer: Python's own Jinja2, as slapos.recipe.template:jinja2 renders,
for the templates minijinja cannot render (store/src/recipes/jinja2.rs decides which).

Its first line out is {"version": jinja2.__version__} (or {"error": ...} when Jinja2 is
missing); then, for each JSON request line on standard input ({"source", "context",
"imports"}), one JSON reply line: {"text": rendered} or {"error": message}. The context is the
one minijinja gets: JSON values, {"$python-module": NAME} entries are that module imported,
and the recipe's DEFAULT_CONTEXT (Python's builtins, `assert`, `dumps`) added. `imports` are
the `import-list` templates by name, found as slapos.recipe.template's RelaxedPrefixLoader
finds them (`name` or `name/`).
"""

import json
import sys

MODULE_KEY = "$python-module"
TEMPLATE = "<template>"


def default_context():
    context = {x.__name__: x for x in (
        abs, all, any, bin, bool, bytes, callable, chr, complex, dict, divmod,
        enumerate, filter, float, format, frozenset, hex, int,
        isinstance, iter, len, list, map, max, min, next, oct, ord, pow,
        range, repr, reversed, round, set, sorted, str, sum, tuple, zip)}
    try:
        import six
        context["six"] = six
    except ImportError:
        pass

    def _assert(x, *args):
        if x:
            return ""
        raise AssertionError(*args)

    context["assert"] = _assert
    # SlapOS's buildout reads `!py!<repr>` back as the value (pybuiltins.rs's `dumps`)
    context["dumps"] = lambda value: "!py!" + repr(value)
    return context


def value(v):
    if isinstance(v, dict) and set(v) == {MODULE_KEY}:
        return __import__(v[MODULE_KEY], fromlist=["*"], level=0)
    return v


class Renderer:
    """Environments by `import-list` (so an imported template compiles once), and their
    compiled templates by text; both kept to a bound."""

    def __init__(self, jinja2):
        self.jinja2 = jinja2
        self.envs = {}

    def environment(self, imports):
        key = json.dumps(imports, sort_keys=True)
        if key not in self.envs:
            if len(self.envs) > 64:
                self.envs.clear()
            self.envs[key] = (self.make(imports), {})
        return self.envs[key]

    def make(self, imports):
        jinja2 = self.jinja2

        class Loader(jinja2.BaseLoader):
            def get_source(self, environment, template):
                name = template.rstrip("/")
                if name not in imports:
                    raise jinja2.TemplateNotFound(template)
                return imports[name], name, lambda: True

        return jinja2.Environment(
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            loader=Loader(),
        )

    def render(self, request):
        env, templates = self.environment(request.get("imports") or {})
        source = request["source"]
        if source not in templates:
            if len(templates) > 256:
                templates.clear()
            templates[source] = env.from_string(source)
        context = {k: value(v) for k, v in (request.get("context") or {}).items()}
        context.update(default_context())
        return templates[source].render(**context)


def describe(error, names):
    """The error and the template line it happened at (Jinja2 rewrites its tracebacks so
    that template frames carry the template's name and line)."""
    where = None
    if getattr(error, "lineno", None):
        where = "%s:%d" % (getattr(error, "name", None) or TEMPLATE, error.lineno)
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == TEMPLATE or code.co_filename in names:
            where = "%s:%d" % (code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    message = "%s: %s" % (type(error).__name__, error)
    return "%s (in %s)" % (message, where) if where else message


def reply(out, message):
    out.write(json.dumps(message) + "\n")
    out.flush()


def main():
    out = sys.stdout
    try:
        import jinja2
    except ImportError as e:
        reply(out, {"error": "Python's Jinja2 is missing (%s): install it "
                             "(Debian: python3-jinja2)" % e})
        return
    reply(out, {"version": jinja2.__version__})
    renderer = Renderer(jinja2)
    for line in sys.stdin:
        names = ()
        try:
            request = json.loads(line)
            names = tuple(request.get("imports") or ())
            reply(out, {"text": renderer.render(request)})
        except Exception as e:  # the template's own error, reported to the part
            reply(out, {"error": describe(e, names)})


main()

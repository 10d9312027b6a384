# The Python side of slapstore's bridge: runs the `init` code of slapos.recipe.build sections
# with the API such code expects (options, self.buildout, self.name, is_true, ...). Every read
# or write of buildout data is a request to slapstore's resolver, answered lazily over a pipe
# (Python's built-in `marshal` format, version 2). While waiting for an answer, slapstore may
# ask for the `init` code of another section to run (a nested request): those are served
# before the answer. Start-up is kept short: nothing slow is imported up front (`json`, `logging` and
# `traceback` cost more than the rest of the start-up together).
import marshal, os, sys

ModuleType = type(sys)
_MISSING = object()

# the protocol keeps its own copies of the pipes; profile code sees stdin empty and its
# prints go to stderr, so neither can disturb the protocol
_proto_out = os.fdopen(os.dup(1), "wb")
_proto_in = os.fdopen(os.dup(0), "rb")
os.dup2(2, 1)
sys.stdout = sys.stderr
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)


# What profile code reads of the machine, for the cache of evaluations (frontend/src/evalcache.rs):
# files it opens for reading, directories it lists, programs it runs. Sent with each `done`. Not
# listed: the interpreter's own files (its standard library: the interpreter is in the cache's
# key), devices, files opened to write, the listing of a temporary directory itself (scratch
# space that other processes change all the time).
_touched = []
_OWN = tuple({os.path.join(p, "") for p in (
    sys.prefix, sys.base_prefix, sys.exec_prefix, "/dev", "/proc")})
_SCRATCH = frozenset(os.path.normpath(p) for p in (os.environ.get("TMPDIR") or "/tmp", "/tmp", "/var/tmp"))
_WATCHED = frozenset(("open", "os.listdir", "os.scandir", "subprocess.Popen"))


def _audit(event, args):
    if event not in _WATCHED:
        return
    try:
        if event == "subprocess.Popen":
            program = args[0] or args[1]
            if not isinstance(program, (str, bytes, os.PathLike)):
                program = program[0]
            program = os.fsdecode(program)
            if not args[0] and isinstance(args[1], (str, bytes)):
                program = program.split()[0]  # a shell command line: its first word
            _touched.append("exec:" + program)
            return
        path = args[0]
        if path is None:
            path = "."
        if isinstance(path, int):
            return
        if event == "open" and (any(c in (args[1] or "r") for c in "wxa") or args[2] & 0o3):
            return  # opened to write: made, not read
        path = os.path.abspath(os.fsdecode(path))
        if event != "open" and path in _SCRATCH:
            return
        if not (path + os.sep).startswith(_OWN):
            _touched.append(("file:" if event == "open" else "dir:") + path)
    except Exception:
        _touched.append("unknown:" + event)


def _send(message):
    marshal.dump(message, _proto_out, 2)
    _proto_out.flush()


def _recv():
    try:
        return marshal.load(_proto_in)
    except EOFError:
        os._exit(0)


class UserError(Exception):
    def __str__(self):
        return " ".join(map(str, self.args))


class MissingOption(UserError, KeyError):
    pass


class MissingSection(UserError, KeyError):
    def __str__(self):
        return "The referenced section, %r, was not defined." % self.args[0]


_ERRORS = {"MissingOption": MissingOption, "MissingSection": MissingSection}


def _call(request):
    _send(request)
    while True:
        message = _recv()
        kind = message["t"]
        if kind == "ok":
            return message
        if kind == "err":
            cls = _ERRORS.get(message["kind"], UserError)
            error = cls(*message["args"])
            error._slapstore_id = message["id"]
            raise error
        if kind == "init":
            _run_init(message)
        else:
            raise RuntimeError("unexpected message from slapstore: %r" % message)


def _unsupported(name):
    def f(*args, **kw):
        raise UserError("%s is not available when slapstore evaluates a profile" % name)
    return f


def _install_stub_modules():
    zc = ModuleType("zc")
    zc.__path__ = []
    buildout = ModuleType("zc.buildout")
    buildout.__path__ = []
    buildout.UserError = UserError
    easy_install = ModuleType("zc.buildout.easy_install")
    easy_install.default_versions = lambda versions=None: versions
    easy_install.working_set = _ez_working_set
    easy_install.install = _ez_install
    bmod = ModuleType("zc.buildout.buildout")
    bmod.MissingOption = MissingOption
    bmod.MissingSection = MissingSection
    zc.buildout = buildout
    buildout.easy_install = easy_install
    buildout.buildout = bmod
    sys.modules.update({
        "zc": zc, "zc.buildout": buildout, "zc.buildout.easy_install": easy_install,
        "zc.buildout.buildout": bmod,
    })
    _install_six()
    _install_pkg_resources()


def _install_six():
    """The part of `six` profile code uses (`from six.moves.urllib.parse import urlparse`, as
    stack/monitor's instance profile does), Python 3's meanings: buildout's Python has six, this
    one runs without site-packages (`-S`)."""
    import configparser
    import urllib.error
    import urllib.parse
    import urllib.request
    six = ModuleType("six")
    six.__path__ = []
    six.PY2, six.PY3 = False, True
    six.string_types, six.text_type, six.binary_type = (str,), str, bytes
    six.integer_types = (int,)
    six.iteritems = lambda d, **kw: iter(d.items(**kw))
    six.itervalues = lambda d, **kw: iter(d.values(**kw))
    six.iterkeys = lambda d, **kw: iter(d.keys(**kw))
    six.ensure_str = lambda s, encoding="utf-8", errors="strict": (
        s.decode(encoding, errors) if isinstance(s, bytes) else s)
    moves = ModuleType("six.moves")
    moves.__path__ = []
    moves_urllib = ModuleType("six.moves.urllib")
    moves_urllib.__path__ = []
    moves_urllib.parse = urllib.parse
    moves_urllib.request = urllib.request
    moves_urllib.error = urllib.error
    moves.urllib = moves_urllib
    moves.configparser = configparser
    six.moves = moves
    sys.modules.update({
        "six": six, "six.moves": moves, "six.moves.urllib": moves_urllib,
        "six.moves.urllib.parse": urllib.parse, "six.moves.urllib.request": urllib.request,
        "six.moves.urllib.error": urllib.error, "six.moves.configparser": configparser,
    })


# The release's distributions, for instance profile code that asks buildout's easy_install for
# them (stack/monitor's `[expand-monitor-uri-template]`): the distributions the release's egg
# parts installed, each a store path, as slapstore tells (`python/eggs.rs`). Nothing is ever
# downloaded or installed here. In a dry run whose egg parts are not built, a distribution not
# found yet defers the section to the deploy (`_Deferred`).

class _Deferred(BaseException):
    """Raised when the section's code needs distributions of egg parts not built yet: not an
    `Exception`, so the code's own `except Exception` cannot swallow it."""


def _normalise(name):
    return "".join("-" if c in "_." else c for c in name.lower())


def _version_key(version):
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


class _Requirement(object):
    """`name[extras] op version, ...; marker`, as `pkg_resources.Requirement.parse` reads it."""

    _OPS = ("===", "==", "!=", "<=", ">=", "~=", "<", ">")

    def __init__(self, text):
        self.text = text.strip()
        spec, _, self.marker = self.text.partition(";")
        spec = spec.strip()
        end = len(spec)
        for i, c in enumerate(spec):
            if not (c.isalnum() or c in "-_."):
                end = i
                break
        self.project_name = self.name = spec[:end]
        if not self.name:
            raise UserError("%r is no requirement (a distribution's name first)" % text)
        self.key = _normalise(self.name)
        rest = spec[end:].strip()
        self.extras = ()
        if rest.startswith("["):
            extras, _, rest = rest[1:].partition("]")
            self.extras = tuple(e.strip() for e in extras.split(",") if e.strip())
        rest = rest.strip().strip("()")
        self.specs = []
        for clause in filter(None, (c.strip() for c in rest.split(","))):
            op = next((o for o in self._OPS if clause.startswith(o)), None)
            if op is None:
                raise UserError("%r: cannot read the version clause %r" % (text, clause))
            self.specs.append((op, clause[len(op):].strip()))

    @classmethod
    def parse(cls, text):
        return cls(text)

    def __contains__(self, item):
        version = item.version if isinstance(item, Distribution) else str(item)
        return all(_version_matches(version, op, wanted) for op, wanted in self.specs)

    def __str__(self):
        return self.text

    __repr__ = __str__


def _version_matches(version, op, wanted):
    if op in ("==", "==="):
        return version == wanted or (_version_key(version) or ()) == _version_key(wanted)
    if op == "!=":
        return not _version_matches(version, "==", wanted)
    have, want = _version_key(version), _version_key(wanted)
    if have is None or want is None:
        raise UserError("cannot compare the version %s with %s%s (only dotted numbers)"
                        % (version, op, wanted))
    if op == "~=":
        return have >= want and have[:len(want) - 1] == want[:-1]
    return {"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[op]


class Distribution(object):
    """One distribution of the release: its store path is its `location`."""

    def __init__(self, project_name, version, location):
        self.project_name = project_name
        self.key = _normalise(project_name)
        self.version = version
        self.location = location

    def requires(self):
        """Its `Requires-Dist` lines, from its `.dist-info/METADATA`."""
        stem = self.project_name.replace("-", "_")
        for name in (os.listdir(self.location) if os.path.isdir(self.location) else ()):
            if name.endswith(".dist-info") and _normalise(name[:-10]).startswith(_normalise(stem) + "-"):
                path = os.path.join(self.location, name, "METADATA")
                if os.path.exists(path):
                    with open(path, encoding="utf-8") as f:
                        head = f.read().split("\n\n", 1)[0]
                    return [_Requirement(line.split(":", 1)[1])
                            for line in head.splitlines() if line.startswith("Requires-Dist:")]
        return []

    def __repr__(self):
        return "%s %s (%s)" % (self.project_name, self.version, self.location)


class DistributionNotFound(UserError):
    pass


class VersionConflict(UserError):
    pass


class WorkingSet(object):
    """The distributions made importable; the global one's entries are `sys.path`."""

    def __init__(self, entries=None):
        self.entries = [] if entries is None else entries
        self.by_key = {}

    def add(self, dist, entry=None, insert=True, replace=False):
        if dist.key in self.by_key:
            return
        self.by_key[dist.key] = dist
        if dist.location not in self.entries:
            self.entries.append(dist.location)

    def find(self, req):
        dist = self.by_key.get(req.key)
        if dist is not None and dist not in req:
            raise VersionConflict(dist, req)
        return dist

    def __iter__(self):
        return iter(list(self.by_key.values()))

    def __contains__(self, dist):
        return self.by_key.get(dist.key) is dist

    def require(self, *specs):
        return _ez_install(list(specs), None, working_set=self)

    def resolve(self, requirements, env=None, installer=None, replace_conflicting=False,
                extras=None):
        """The distributions `requirements` need, with their dependencies, from the release's
        (`env` is read as `Environment` is): this set's own first; this set unchanged."""
        ws = WorkingSet()
        for dist in self:
            ws.add(dist)
        _ez_install(list(requirements), None, working_set=ws)
        return list(ws)


class Environment(object):
    """`pkg_resources.Environment(search_path)`: the release's distributions, whatever the
    search path says (the release's `eggs-directory` and `develop-eggs-directory` hold nothing in
    slapstore, as with `easy_install.install`'s `path`): `WorkingSet.resolve` finds them."""

    def __init__(self, search_path=None, platform=None, python=None):
        self.search_path = search_path

    def scan(self, search_path=None):
        pass


_release_eggs = []  # the answer to `eggs`, once asked


def _release():
    if not _release_eggs:
        _release_eggs.append(_call({"t": "eggs"})["v"])
    return _release_eggs[0]


def _ez_install(specs, dest, links=(), index=None, executable=None, always_unzip=None,
                path=None, working_set=None, newest=True, versions=None,
                use_dependency_links=None, allow_hosts=("*",), include_site_packages=None,
                allowed_eggs_from_site_packages=None, check_picked=True,
                allow_unknown_extras=False):
    """`zc.buildout.easy_install.install` in an instance: the release's egg parts installed
    every distribution the instance may use; `path` (the release's `eggs-directory` and
    `develop-eggs-directory`, which hold nothing in slapstore) stands for them."""
    if dest is not None:
        raise UserError(
            "zc.buildout.easy_install.install(dest=%r): installing distributions while an "
            "instance deploys is not supported; install them with an egg part of the "
            "software release and call install with dest=None" % (dest,))
    release = _release()
    if release is None:
        raise UserError("zc.buildout.easy_install.install is available only when an instance "
                        "profile is rendered (the release's distributions)")
    have = {}
    for name, version, location in release["dists"]:
        have.setdefault(_normalise(name), Distribution(name, version, location))
    ws = WorkingSet() if working_set is None else working_set
    todo = [s if isinstance(s, _Requirement) else _Requirement(s) for s in specs]
    missing = []
    while todo:
        req = todo.pop(0)
        dist = have.get(req.key)
        if dist is None:
            missing.append(req.project_name)
            continue
        if dist not in req:
            raise VersionConflict(
                "the release's egg parts installed %s %s, which is not %s"
                % (dist.project_name, dist.version, req))
        if dist.key in ws.by_key:
            continue
        ws.add(dist)
        for dep in dist.requires():
            if "extra" in dep.marker:
                continue
            # the release's installer evaluated the markers: a dependency under a marker
            # that it did not install does not apply here
            if dep.marker.strip() and dep.key not in have:
                continue
            todo.append(dep)
    if missing and release["pending"]:
        raise _Deferred(missing, release["pending"])
    if missing:
        installed = sorted(d.project_name for d in have.values())
        raise DistributionNotFound(
            "the software release has no distribution %s: its egg parts installed %s; add it "
            "to one of them (`eggs`)" % (", ".join("`%s`" % m for m in missing),
                                        ", ".join(installed) or "none"))
    return ws


def _ez_working_set(specs, executable, path=None, include_site_packages=None,
                    allowed_eggs_from_site_packages=None):
    """`zc.buildout.easy_install.working_set`: the distributions of `specs`, in a working set of
    their own (its second argument is the path when `path` is not given, as buildout reads it)."""
    return _ez_install(specs, None, path=executable if path is None else path)


def _install_pkg_resources():
    """The part of `pkg_resources` such code uses: the global `working_set`, whose entries are
    `sys.path`, requirements, distributions and their errors."""
    pkg = ModuleType("pkg_resources")
    pkg.working_set = WorkingSet(sys.path)
    pkg.WorkingSet = WorkingSet
    pkg.Environment = Environment
    pkg.Requirement = _Requirement
    pkg.Distribution = Distribution
    pkg.DistributionNotFound = DistributionNotFound
    pkg.VersionConflict = VersionConflict
    pkg.require = lambda *specs: list(pkg.working_set.require(*specs))

    def get_distribution(spec):
        req = spec if isinstance(spec, _Requirement) else _Requirement(str(spec))
        return pkg.working_set.find(req) or pkg.working_set.require(req.text).find(req)
    pkg.get_distribution = get_distribution
    sys.modules["pkg_resources"] = pkg


class Mapping(object):
    """The dict methods profile code uses, on top of `keys`, `__getitem__`, `__setitem__` and
    `__delitem__` (what `collections.abc.MutableMapping` gives, without importing it)."""

    def __contains__(self, key):
        try:
            self[key]
        except KeyError:
            return False
        return True

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def pop(self, key, default=_MISSING):
        try:
            value = self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        del self[key]
        return value

    def setdefault(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            self[key] = default
            return default

    def update(self, other=(), **kw):
        items = other.items() if hasattr(other, "items") else other
        for k, v in items:
            self[k] = v
        for k, v in kw.items():
            self[k] = v

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __eq__(self, other):
        return dict(self.items()) == dict(other.items()) if hasattr(other, "items") else False

    __hash__ = None


# SlapOS's buildout stores an option value that is not a string serialised, as `!py!` and its
# repr(), and reads such a text back as the value (a `${}` reference inserts the text, so an
# option that is only a reference to one has the value too)
_SERIAL = "!py!"
_LITERALS = {"__builtins__": {}, "set": set, "frozenset": frozenset}


def _dumps(value):
    text = repr(value)
    try:
        same = _loads(_SERIAL + text) == value
    except Exception:
        same = False
    if not same:
        raise TypeError("Option values must be strings or Python literals", value)
    return _SERIAL + text


def _loads(text):
    if text is not None and text.startswith(_SERIAL):
        return eval(text[len(_SERIAL):], dict(_LITERALS))
    return text


class Options(Mapping):
    """A section of the buildout, as `Options` objects behave."""

    def __init__(self, buildout, name):
        self.buildout = buildout
        self.name = name
        self.depends = set()

    def get(self, key, default=None):
        value = _call({"t": "get", "s": self.name, "o": key})["v"]
        return default if value is None else _loads(value)

    def __contains__(self, key):
        return _call({"t": "get", "s": self.name, "o": key})["v"] is not None

    def __getitem__(self, key):
        value = _call({"t": "get", "s": self.name, "o": key})["v"]
        if value is None:
            raise MissingOption("Missing option: %s:%s" % (self.name, key))
        return _loads(value)

    def __setitem__(self, key, value):
        if not isinstance(value, str):
            value = _dumps(value)
        _send({"t": "set", "s": self.name, "o": key, "v": value})  # cannot fail: no answer

    def __delitem__(self, key):
        if _call({"t": "del", "s": self.name, "o": key}).get("missing"):
            raise KeyError(key)

    def keys(self):
        return _call({"t": "keys", "s": self.name})["v"]

    def items(self):
        return [(k, _loads(v)) for k, v in _call({"t": "items", "s": self.name})["v"]]

    def values(self):
        return [v for _, v in self.items()]

    def copy(self):
        return dict(_call({"t": "copy", "s": self.name})["v"])

    def barrier(self):
        pass

    def __repr__(self):
        return repr(dict(self))


class Buildout(Mapping):
    """The whole buildout: sections initialised on first access."""

    def __init__(self):
        self._sections = {}

    def __getitem__(self, name):
        try:
            return self._sections[name]  # initialised already: nothing to ask
        except KeyError:
            pass
        _call({"t": "section", "s": name})
        options = self._sections[name] = Options(self, name)
        return options

    def __setitem__(self, name, data):
        text = "[%s]\n" % name + "".join(
            "%s = %s\n" % (k, str(v).replace("\n", "\n  ")) for k, v in data.items())
        self.parse(text)

    def __delitem__(self, name):
        raise NotImplementedError("__delitem__")

    def keys(self):
        return _call({"t": "sections"})["v"]

    def __contains__(self, name):
        return name in self.keys()

    def parse(self, data):
        _call({"t": "parse", "text": data})


_buildout = Buildout()


class Recipe(object):
    """What `self` is in slapos.recipe.build code."""

    def __init__(self, name, location):
        self.name = name
        self.buildout = _buildout
        self.options = _buildout._sections.get(name)
        if self.options is None:
            self.options = _buildout[name]
        self.location = location

    @property
    def logger(self):
        import logging
        return logging.getLogger(self.name)


def is_true(value, default=False):
    return default if value is None else ("false", "true").index(value)


def guessworkdir(path):
    x = os.listdir(path)
    return os.path.join(path, *x) if len(x) == 1 else path


def call(*args, **kwargs):
    import subprocess
    kwargs.update(stdin=subprocess.PIPE, close_fds=True)
    popen = subprocess.Popen(*args, **kwargs)
    popen.stdin.close()
    popen.stdin = None
    popen.communicate()
    if popen.returncode != 0:
        raise subprocess.CalledProcessError(popen.returncode, " ".join(args[0]))


def _run_init(message):
    name = message["section"]
    try:
        recipe = Recipe(name, message["location"])
        g = {"call": call, "guessworkdir": guessworkdir, "is_true": is_true,
             "self": recipe, "options": recipe.options}
        if message["location"] is not None:
            g["location"] = message["location"]
        code = compile(message["code"], name, "exec")
        exec(code, g)
    except _Deferred as e:
        needs, pending = e.args
        _send({"t": "defer", "needs": needs, "pending": pending})
    except BaseException as e:
        import traceback
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == name]
        line = frames[-1].lineno if frames else None
        text = message["code"].splitlines()[line - 1] if line else None
        if isinstance(e, SyntaxError) and e.filename == name:
            line, text = e.lineno, e.text
        _send({
            "t": "fail",
            "type": type(e).__name__,
            "message": str(e),
            "user": isinstance(e, UserError),
            "id": getattr(e, "_slapstore_id", None),
            "line": line,
            "text": text.rstrip("\n") if text else None,
            # a file it could not read: in a dry run, one an unbuilt part makes defers it
            "filename": os.fsdecode(e.filename) if isinstance(e, FileNotFoundError)
            and isinstance(e.filename, (str, bytes)) else None,
        })
    else:
        touched = list(dict.fromkeys(_touched))
        del _touched[:]
        _send({"t": "done", "r": touched})


def main():
    _install_stub_modules()
    sys.addaudithook(_audit)
    _send({"t": "ready"})
    while True:
        message = _recv()
        if message["t"] == "init":
            _run_init(message)


main()

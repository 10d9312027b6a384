# slapstore's build-time Python host: one process per build, inside the build's sandbox, serving
# every piece of Python the build runs (`pyhost.rs` starts it on first need); also, once per
# `install` code of an instance part, at its deploy, in the partition (`pyhost.rs`, `run_alone`).
#
# Requests arrive on stdin, one JSON object a line; each gets one JSON line back on stdout. Both
# are moved to private descriptors first: fd 0 becomes /dev/null and fd 1 the log (fd 2), so
# `print` and subprocesses write to the build log and never read the requests. On end of input
# the host exits.
#
#   {"op": "hook", ...}     one of slapos.recipe.cmmi's Python hooks (`FILE#MD5:FUNCTION`):
#                           the file is loaded as module `script`, FUNCTION(options, buildout,
#                           environment) is called, or FUNCTION(options, buildout)
#   {"op": "install", ...}  slapos.recipe.build's `install` code, as its `Script` runs it
#
# Reply: {"ok": true} or {"ok": false, "error": "<the traceback>"}.
# Only what every step needs is imported at start-up (the host's start is part of every build
# that runs Python); the rest when a step uses it.
import json
import os
import sys

REQUESTS = os.fdopen(os.dup(0), "r")
PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
os.dup2(2, 1)
sys.stdout = os.fdopen(1, "w", buffering=1)


class UserError(Exception):
    """zc.buildout's UserError: a failure whose message says it all."""


class Captured(dict):
    """A section of `self.buildout` as slapstore captured it when the profile was read."""

    def __init__(self, name, items, partial):
        super().__init__(items)
        self.name = name
        self.partial = partial

    def __missing__(self, key):
        if self.partial:
            raise KeyError(
                "option %r of section [%s] was not captured when the profile was read: "
                "build-time code sees only %s" % (key, self.name, ", ".join(sorted(self)))
            )
        raise KeyError(key)


class Buildout(dict):
    """`self.buildout`: the sections the code names literally, resolved when the profile was
    read (they are inputs of the derivation's hash); any other is an error, never a silent
    answer. `absent` are the sections it names that the profile does not have."""

    def __init__(self, sections, absent):
        super().__init__(sections)
        self.absent = absent

    def __missing__(self, name):
        if name in self.absent:
            raise KeyError(name)
        raise KeyError(
            "section [%s] is not one the build-time code can read: slapstore captures, when "
            "the profile is read, the sections the code names literally "
            "(`self.buildout['name']` or `self.buildout[options['key']]`), and [%s] is not "
            "among them (captured: %s)" % (name, name, ", ".join(sorted(self)))
        )

    def __contains__(self, name):
        if dict.__contains__(self, name):
            return True
        if name in self.absent:
            return False
        self.__missing__(name)

    def get(self, name, default=None):
        return self[name] if name not in self.absent else default


def call(*args, **kwargs):
    """Subprocess call with closed file descriptors and stdin"""
    import subprocess

    kwargs.update(stdin=subprocess.PIPE, close_fds=True)
    popen = subprocess.Popen(*args, **kwargs)
    popen.stdin.close()
    popen.stdin = None
    popen.communicate()
    if popen.returncode != 0:
        raise subprocess.CalledProcessError(popen.returncode, " ".join(args[0]))


def guessworkdir(path):
    x = os.listdir(path)
    return os.path.join(path, *x) if len(x) == 1 else path


def is_true(value, default=False):
    return default if value is None else ("false", "true").index(value)


def rmtree(path):
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def unpack_archive(path, extract_dir):
    """setuptools' `unpack_archive` as slapos.recipe.build uses it: tar (any compression) or
    zip, never writing outside `extract_dir`."""
    import tarfile
    import zipfile

    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(extract_dir, filter="tar")
            else:
                for member in tar:
                    name = member.name
                    if name.startswith("/") or ".." in name.split("/"):
                        raise UserError("%s: member %r leaves the directory" % (path, name))
                    tar.extract(member, extract_dir)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if name.startswith("/") or ".." in name.split("/"):
                    raise UserError("%s: member %r leaves the directory" % (path, name))
                z.extract(info, extract_dir)
                mode = info.external_attr >> 16
                if mode & 0o777:
                    os.chmod(os.path.join(extract_dir, name), mode & 0o777)
    else:
        raise UserError("%s is not a tar or zip archive" % path)


GLOBALS = {"call": call, "guessworkdir": guessworkdir, "is_true": is_true}


class Script:
    """slapos.recipe.build's `Script` at install time, with what its code uses."""

    def __init__(self, request):
        self.name = request["part"]
        self.options = request["options"]
        captured = request["buildout"]
        self.buildout = Buildout(
            (
                (name, Captured(name, items, name == "buildout"))
                for name, items in captured.items()
                if items is not None
            ),
            {name for name, items in captured.items() if items is None},
        )
        self.buildout[self.name] = self.options
        self.downloads = request["downloads"]
        self.files = set(request["files"])
        self.cleanup_list = []
        self.keep_on_error = False

    cleanup_dir_list = cleanup_file_list = property(lambda self: self.cleanup_list)

    @property
    def logger(self):
        import logging

        if not logging.root.handlers:
            logging.basicConfig(
                level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s"
            )
        return logging.getLogger(self.name)

    @property
    def environ(self):
        """`EnvironMixin.environ`: the build's environment and the `environment` option."""
        environment = self.options.get("environment")
        if not environment:
            return {}
        env = {}
        for line in environment.splitlines():
            line = line.strip()
            if line:
                try:
                    k, v = line.split("=", 1)
                except ValueError:
                    raise UserError("Line %r in environment is incorrect" % line)
                env[k.rstrip()] = v.lstrip()
        value = os.environ.copy()
        for k in sorted(env):
            value[k] = env[k] % os.environ
        return value

    def download(self, *args, **kw):
        """A download fetched (by checksum, through the download cache) before the build: the
        sandbox has no network."""
        if not (args or "url" in kw):
            args = self.options["url"], self.options.get("md5sum") or None
        kw.pop("offline", None)
        url = args[0] if args else kw.pop("url")
        md5sum = args[1] if len(args) > 1 else kw.pop("md5sum", None)
        if md5sum:
            for d in self.downloads:
                if d["checksum"] == "md5:" + md5sum.strip().lower():
                    return d["path"]
        for d in self.downloads:
            if d["checksum"] is None and url in d["urls"]:
                return d["path"]
        local = url[len("file://"):] if url.startswith("file://") else url
        if local in self.files:
            return local
        raise UserError(
            "download of %r%s at build time: slapstore fetches before the build (the sandbox "
            "has no network) the part's `url` with its `md5sum` (or `sha256`, `blake3`), and "
            "this download is not that one" % (url, " (md5 %s)" % md5sum if md5sum else "")
        )

    def extract(self, path):
        import tempfile

        extract_dir = tempfile.mkdtemp(self.name)
        self.cleanup_list.append(extract_dir)
        unpack_archive(path, extract_dir)
        return extract_dir

    def pipeCommand(self, command_list_list, *args, **kwargs):
        """Allows to do shell like pipes (|)"""
        import subprocess

        subprocess_list = []
        previous = None
        kwargs["stdout"] = subprocess.PIPE
        run_list = []
        for command_list in command_list_list:
            if previous is not None:
                kwargs["stdin"] = previous.stdout
            p = subprocess.Popen(command_list, *args, **kwargs)
            if previous is not None:
                previous.stdout.close()
            command = " ".join(command_list)
            subprocess_list.append((p, command))
            run_list.append(command)
            previous = p
        self.logger.info("Running: %s", " | ".join(run_list))
        failed = [command for p, command in reversed(subprocess_list) if p.wait()]
        if failed:
            raise UserError("Failed while running:\n  " + "\n  ".join(failed))

    def copyTree(self, origin, destination, ignore_dir_list=()):
        import shutil

        if os.path.exists(destination):
            raise shutil.Error("Destination already exists: %s" % destination)
        self.logger.info("Copying %r to %r", origin, destination)
        try:
            shutil.copytree(
                origin, destination, symlinks=True, ignore=lambda src, names: ignore_dir_list
            )
        except BaseException:
            self.cleanup_list.append(destination)
            raise

    def applyPatchList(self, patch_string, patch_options=None, patch_binary=None, cwd=None):
        if patch_string is None:
            return
        import shlex
        import subprocess

        patch_options = [] if patch_options is None else shlex.split(patch_options)
        patch_binary = "patch" if patch_binary is None else patch_binary.strip()
        kwargs = {} if cwd is None else {"cwd": cwd}
        for patch in patch_string.splitlines():
            patch = patch.strip()
            if not patch:
                continue
            md5sum = None
            if " " in patch:
                patch, md5sum = patch.split(" ", 1)
                md5sum = md5sum.strip()
                if md5sum.lower() == "unknown":
                    md5sum = None
            if md5sum is not None and " " in md5sum:
                md5sum, patch_options = md5sum.split(" ", 1)
                patch_options = patch_options.split(" ")
            self.logger.info("Applying patch %r", patch)
            with open(self.download(patch, md5sum)) as stdin:
                subprocess.check_call([patch_binary] + patch_options, stdin=stdin, **kwargs)

    def _exec(self, script):
        import linecache

        g = dict(GLOBALS, self=self, options=self.options)
        if "location" in self.options:
            g["location"] = self.options["location"]
        # the traceback shows the code's lines, under the part's name
        linecache.cache[self.name] = (len(script), None, script.splitlines(True), self.name)
        exec(compile(script, self.name, "exec"), g)

    def install(self, code):
        """`Shared.install` and `Script._install`: `location` (in the output) must not exist
        before, and must after; with an empty `location` (the part manages no path), the code
        just runs, as `Script.install` does."""
        location = self.options["location"]
        if not location:
            self._exec(code)
            return
        rmtree(location)
        parent = os.path.dirname(location)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent)
        try:
            self._exec(code)
        finally:
            for path in self.cleanup_list:
                if path != location and os.path.lexists(path):
                    rmtree(path)
        if not os.path.lexists(location):
            raise UserError("%r was not created" % location)


def hook(request):
    """slapos.recipe.cmmi's `call_script`."""
    options = request["options"]
    buildout = {"buildout": request["buildout"], request["part"]: options}
    from importlib import util

    spec = util.spec_from_file_location("script", request["file"])
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    script = getattr(module, request["function"].strip())
    try:
        script(options, buildout, dict(os.environ))
    except TypeError:
        # as slapos.recipe.cmmi: hooks that do not take the environment
        script(options, buildout)


def serve():
    for line in REQUESTS:
        request = json.loads(line)
        try:
            os.chdir(request["cwd"])
            if request["op"] == "hook":
                hook(request)
            else:
                Script(request).install(request["code"])
            reply = {"ok": True}
        except BaseException as e:
            if isinstance(e, UserError):
                text = "%s: %s\n" % (request["part"], e)
            else:
                import traceback

                text = traceback.format_exc()
            reply = {"ok": False, "error": text}
        sys.stdout.flush()
        sys.stderr.flush()
        PROTOCOL.write(json.dumps(reply) + "\n")
        PROTOCOL.flush()


serve()

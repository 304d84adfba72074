"""Run the test suite as the release ships it: the wheel installed, the tests of the sdist.

    python scripts/sdist_tests.py --dist dist --workdir DIR [--junitxml FILE] [PYTEST ARGS]

Run by the ``*-sdist`` tox envs (tox.ini), with the env's Python (2.7 or 3.x): it finds the one
sdist and the one wheel that ``python3 scripts/build_release.py`` put in ``--dist``, installs
the wheel into this Python with pip (its dependencies as the wheel's markers choose them),
unpacks the sdist into ``--workdir`` and runs pytest there on its whole ``tests/``, as a user
runs the shipped tests: the directories whose tools this env lacks (tests/greenlets,
tests/clients, tests/stress: gevent, gunicorn, South...) skip, each test saying what it needs,
since CI's requirement that they be there (``TOOLS_REQUIRED``) is the tools envs' and is not
passed on. The unpacked tree is nowhere on sys.path: the tests import the installed wheel. Exits
with pytest's exit code (2 if the release is not there).
"""
from __future__ import print_function

import glob
import os
import shutil
import subprocess
import sys
import tarfile

# What .ci/run requires of the envs that install the servers and tools beside Django (a missing
# one fails there); the release's tests run without them and must skip instead.
TOOLS_REQUIRED = ("CONNLOCAL_SHIM_REQUIRE_GREENLETS", "CONNLOCAL_SHIM_REQUIRE_CLIENTS",
                  "CONNLOCAL_SHIM_REQUIRE_APACHE")


def fail(message):
    sys.stderr.write("sdist_tests: %s\n" % message)
    return 2


def one(pattern, what, dist):
    found = glob.glob(os.path.join(dist, pattern))
    if len(found) != 1:
        raise LookupError("expected one %s in %s, found %s: build the release first "
                          "(python3 scripts/build_release.py --dist-dir %s)" % (
                              what, dist, ", ".join(map(os.path.basename, found)) or "none",
                              dist))
    return found[0]


def parse(argv):
    options = {"--dist": None, "--workdir": None, "--junitxml": None}
    rest = []
    index = 0
    while index < len(argv):
        if argv[index] in options and index + 1 < len(argv):
            options[argv[index]] = argv[index + 1]
            index += 2
        else:
            rest.append(argv[index])
            index += 1
    return options, rest


def main(argv):
    options, pytest_args = parse(argv)
    if not options["--dist"] or not options["--workdir"]:
        return fail("usage: sdist_tests.py --dist DIR --workdir DIR [--junitxml FILE] [ARGS]")
    dist = os.path.abspath(options["--dist"])
    try:
        sdist = one("connlocal_shim-*.tar.gz", "sdist", dist)
        wheel = one("connlocal_shim-*-py2.py3-none-any.whl", "wheel", dist)
    except LookupError as error:
        return fail(str(error))
    print("sdist_tests: installing %s" % wheel)
    sys.stdout.flush()
    # Its dependencies as its markers choose them, then the wheel itself again: pip keeps an
    # installed connlocal-shim of the same version, which need not be this wheel.
    code = subprocess.call([sys.executable, "-m", "pip", "install", wheel]) or subprocess.call(
        [sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps", wheel])
    if code != 0:
        return fail("pip could not install the wheel (exit %s)" % code)
    workdir = os.path.abspath(options["--workdir"])
    if os.path.isdir(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    with tarfile.open(sdist) as bundle:
        bundle.extractall(workdir)
    (unpacked,) = [os.path.join(workdir, name) for name in os.listdir(workdir)]
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    for name in TOOLS_REQUIRED:
        environ.pop(name, None)
    location = subprocess.check_output(
        [sys.executable, "-c", "import connlocal_shim; print(connlocal_shim.__file__)"],
        cwd=workdir, env=environ).decode("utf-8").strip()
    if os.path.abspath(location).startswith(unpacked + os.sep):
        return fail("connlocal_shim imports from the unpacked sdist (%s), not the wheel" % location)
    print("sdist_tests: connlocal_shim from the wheel: %s" % location)
    print("sdist_tests: running the tests of %s" % unpacked)
    sys.stdout.flush()
    # pytest's own script, not `python -m pytest`: that would put the unpacked tree (with its
    # connlocal_shim/) first on sys.path, and the tests must import the installed wheel.
    pytest = os.path.join(os.path.dirname(sys.executable), "pytest")
    command = [pytest, "-p", "no:cacheprovider"]
    if options["--junitxml"]:
        command.append("--junitxml=%s" % os.path.abspath(options["--junitxml"]))
    command += pytest_args or ["tests"]
    return subprocess.call(command, cwd=unpacked, env=environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

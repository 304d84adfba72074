"""The benchmark's own virtualenvs, under bench/.venvs/ (git-ignored), made on first run.

Each env gets the shim installed from this checkout in editable mode, so an edit of the hot path
is measured by the next run without reinstalling. An env is rebuilt when its package list
changes (a stamp file records it). virtualenv<20.22 is the last that creates Python 2.7 envs:
it comes from .ci/.venv, made here as the test README says if it is missing.
"""
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENVS = os.path.join(HERE, ".venvs")
CI_VENV = os.path.join(REPO, ".ci", ".venv")

PY27_COMMON = ["wrapt<1.16", "psycopg2-binary==2.8.6", "gunicorn==19.10.0", "futures"]

# name -> (python version, pip options, packages)
ENVS = {
    # Django 1.2/1.3 built as a wheel lose their locale and template files: see tox.ini.
    "py27-django13": ("2.7", ["--no-binary", "Django"], ["Django==1.3.7"] + PY27_COMMON),
    "py27-django14": ("2.7", [], ["Django==1.4.22"] + PY27_COMMON),
    "py313-django61": (
        "3.13", [], ["Django>=6.1,<6.2", "wrapt", "psycopg2-binary>=2.9.9,<2.10", "gunicorn"]
    ),
}


def log(message):
    sys.stderr.write("bench: %s\n" % message)
    sys.stderr.flush()


def find_python(version):
    """The interpreter for ``version``: $BENCH_PYTHON<2.7 as 27>, pyenv's, or PATH's."""
    override = os.environ.get("BENCH_PYTHON%s" % version.replace(".", ""))
    if override:
        return override
    candidates = sorted(glob.glob("/root/.pyenv/versions/%s.*/bin/python%s" % (version, version)))
    candidates += sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/%s.*/bin/python%s" % (version, version))))
    for candidate in reversed(candidates):
        if os.access(candidate, os.X_OK):
            return candidate
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, "python%s" % version)
        if os.access(path, os.X_OK):
            return path
    raise SystemExit("bench: no Python %s found (set BENCH_PYTHON%s)"
                     % (version, version.replace(".", "")))


def run(command, **kwargs):
    log("$ " + " ".join(command))
    subprocess.check_call(command, **kwargs)


def virtualenv_command():
    tool = os.path.join(CI_VENV, "bin", "virtualenv")
    if not os.access(tool, os.X_OK):
        run([find_python("3.11"), "-m", "venv", CI_VENV])
        run([os.path.join(CI_VENV, "bin", "pip"), "install", "-q", "-r",
             os.path.join(REPO, "requirements", "tox.txt")])
    return tool


def env_python(name):
    return os.path.join(VENVS, name, "bin", "python")


def ensure(name):
    """Create or refresh the env ``name``; return its python."""
    version, pip_options, packages = ENVS[name]
    directory = os.path.join(VENVS, name)
    stamp_path = os.path.join(directory, ".bench-stamp")
    wanted = json.dumps({"python": version, "options": pip_options, "packages": packages})
    try:
        with open(stamp_path) as handle:
            if handle.read() == wanted:
                return env_python(name)
    except IOError:
        pass
    log("setting up %s" % directory)
    if os.path.isdir(directory):
        import shutil

        shutil.rmtree(directory)
    run([virtualenv_command(), "-q", "-p", find_python(version), directory])
    pip = [env_python(name), "-m", "pip", "install", "-q"]
    run(pip + pip_options + packages)
    run(pip + ["-e", REPO])
    with open(stamp_path, "w") as handle:
        handle.write(wanted)
    return env_python(name)


def ensure_all():
    return dict((name, ensure(name)) for name in sorted(ENVS))


if __name__ == "__main__":
    for name, python in sorted(ensure_all().items()):
        print("%s %s" % (name, python))

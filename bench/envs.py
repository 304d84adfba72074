"""The benchmark's own virtualenvs, under bench/.venvs/ (git-ignored), made on first run.

Each env gets the shim installed from this checkout in editable mode, so an edit of the hot path
is measured by the next run without reinstalling. An env is rebuilt when its package list
changes (a stamp file records it). Figure 4's anchors (other routers' blocks) are installed after
the env's own packages, one pip call each, held to the env's Django by a constraint: one that pip
refuses is recorded in the env (``.bench-anchors.json``) with pip's last words, not fatal, and
figure 4 prints that in its row instead of a number. virtualenv<20.22 is the last that creates
Python 2.7 envs: it comes from .ci/.venv, made here as the test README says if it is missing.
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
    "py27-django12": ("2.7", ["--no-binary", "Django"], ["Django==1.2.7"] + PY27_COMMON),
    "py27-django13": ("2.7", ["--no-binary", "Django"], ["Django==1.3.7"] + PY27_COMMON),
    "py27-django14": ("2.7", [], ["Django==1.4.22"] + PY27_COMMON),
    "py313-django61": (
        "3.13", [], ["Django>=6.1,<6.2", "wrapt", "psycopg2-binary>=2.9.9,<2.10", "gunicorn"]
    ),
    # Figure 4 only (sqlite, in-process): no database driver, no server.
    "py312-django42": ("3.12", [], ["Django>=4.2,<4.3", "wrapt"]),
}

# Figure 4's anchors: anchor -> the release measured (django-dynamic-db-router 0.3.0 is the one
# issue 15 measured; it declares Django>=1.7, and django-multidb-router 0.11 Django>=4.2).
ANCHOR_PACKAGES = {
    "in_database": "django-dynamic-db-router==0.3.0",
    "use_primary_db": "django-multidb-router==0.11",
}
# env -> the anchors tried in it (none on Python 2.7: neither release supports Django 1.2/1.3).
ANCHORS = {
    "py312-django42": ("in_database", "use_primary_db"),
    "py313-django61": ("in_database", "use_primary_db"),
}
ANCHORS_FILE = ".bench-anchors.json"


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
    anchors = [ANCHOR_PACKAGES[anchor] for anchor in ANCHORS.get(name, ())]
    directory = os.path.join(VENVS, name)
    stamp_path = os.path.join(directory, ".bench-stamp")
    wanted = json.dumps({"python": version, "options": pip_options, "packages": packages,
                         "anchors": anchors})
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
    install_anchors(name, pip)
    with open(stamp_path, "w") as handle:
        handle.write(wanted)
    return env_python(name)


def install_anchors(name, pip):
    """Install ``name``'s anchors, each on its own, never moving the env's Django; record which
    installed (their versions) and why the others did not."""
    directory = os.path.join(VENVS, name)
    django_version = subprocess.check_output(
        [env_python(name), "-c", "import django; print(django.get_version())"],
        universal_newlines=True,
    ).strip()
    constraints = os.path.join(directory, ".bench-constraints.txt")
    with open(constraints, "w") as handle:
        handle.write("Django==%s\n" % django_version)
    record = {}
    for anchor in ANCHORS.get(name, ()):
        requirement = ANCHOR_PACKAGES[anchor]
        command = pip + ["-c", constraints, requirement]
        log("$ " + " ".join(command))
        completed = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        )
        if completed.returncode == 0:
            record[anchor] = {"requirement": requirement, "installed": True}
        else:
            lines = [line.strip() for line in completed.stdout.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
            reason = " ".join(errors)[-300:]
            log("%s did not install in %s (Django %s): %s"
                % (requirement, name, django_version, reason))
            record[anchor] = {"requirement": requirement, "installed": False,
                              "reason": "pip with Django==%s: %s" % (django_version, reason)}
    with open(os.path.join(directory, ANCHORS_FILE), "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)


def anchors(name):
    """What install_anchors() recorded for env ``name``: anchor -> {"installed": ..., ...}."""
    try:
        with open(os.path.join(VENVS, name, ANCHORS_FILE)) as handle:
            return json.load(handle)
    except IOError:
        return {}


def ensure_envs(names):
    return dict((name, ensure(name)) for name in sorted(set(names)))


def ensure_all():
    return ensure_envs(ENVS)


if __name__ == "__main__":
    for name, python in sorted(ensure_all().items()):
        print("%s %s" % (name, python))

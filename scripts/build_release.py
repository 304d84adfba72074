"""Build the release: the sdist and one wheel for Python 2.7 and 3.x, checked.

    python3 scripts/build_release.py                  # into dist/
    python3 scripts/build_release.py --dist-dir DIR

In a venv of its own (.ci/.venv-release, made on first use with the Python that runs this, from
requirements/release.txt: pinned setuptools, wheel, build and twine), it runs
``python -m build --no-isolation`` on the checkout, then ``twine check --strict``. It fails if
the build printed a warning (a deprecated option, a MANIFEST.in pattern that matched nothing),
if there is not exactly one sdist and one ``py2.py3-none-any`` wheel, if the wheel does not
choose wrapt by environment markers, if the sdist lacks what its tests need, or, in a git
checkout, if the sdist is not every file git tracks but .gitignore (SDIST_LEFT_OUT). Python 3 only
(run outside the envs); Python 2.7 installs the results.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from compat_matrix import tools  # noqa: E402

RELEASE_VENV = os.path.join(ROOT, ".ci", ".venv-release")
RELEASE_REQUIREMENTS = os.path.join(ROOT, "requirements", "release.txt")
# What the tests and docs need from the sdist (the tests run from it: scripts/sdist_tests.py).
SDIST_MUST_HAVE = (
    "setup.py", "setup.cfg", "MANIFEST.in", "README.rst", "CHANGES.rst", "LICENSE", "tox.ini",
    "requirements/tox.txt", "tests/conftest.py", "tests/support.py", "tests/pg_cluster.py",
    "tests/legacy_module.py", "tests/site_urls.py", "tests/web.py", "tests/async_cases.py",
    "tests/thirdparty_backend/base.py", "tests/stress/conftest.py",
    "tests/stress/stressproject/settings.py", "docs/conf.py", "docs/index.rst",
    "examples/routing_demo.py", "compat_matrix/probe.py", "compat_matrix/demo_site/manage.py",
    "scripts/django_suite.py", "scripts/sdist_tests.py",
)
# The sdist is every file git tracks but these (MANIFEST.in; docs/installation.rst says so), plus
# what setuptools writes into it.
SDIST_LEFT_OUT = (".gitignore",)
SDIST_GENERATED = re.compile(r"^(PKG-INFO|connlocal_shim\.egg-info/.*)$")
WRAPT_MARKERS = (
    'Requires-Dist: wrapt<1.16,>=1.12; python_version < "3"',
    'Requires-Dist: wrapt>=1.12; python_version >= "3"',
)
# setuptools' warnings: "warning: no files found matching ...", "SetuptoolsDeprecationWarning",
# "WARNING License classifiers are deprecated." and their like.
WARNING = re.compile(r"warning|deprecat", re.I)


class ReleaseError(Exception):
    pass


def say(message):
    print("build_release: %s" % message)
    sys.stdout.flush()


def run(command, what):
    environ = tools.clean_environ()
    environ.pop("PYTHONDONTWRITEBYTECODE", None)  # else setuptools warns that it skips .pyc
    environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=environ, cwd=ROOT)
    output = process.stdout.decode("utf-8", "replace")
    if process.returncode != 0:
        raise ReleaseError("%s failed (exit %s):\n%s" % (what, process.returncode, output[-4000:]))
    return output


def clean(dist_dir):
    """Remove earlier artifacts, and what setuptools would reuse: an old egg-info's SOURCES.txt
    puts every file it lists into the sdist whatever MANIFEST.in says now."""
    for path in glob.glob(os.path.join(dist_dir, "connlocal[-_]shim-*")):
        os.remove(path)
    for path in [os.path.join(ROOT, "connlocal_shim.egg-info"), os.path.join(ROOT, "build", "lib")]\
            + glob.glob(os.path.join(ROOT, "build", "bdist.*")):
        shutil.rmtree(path, ignore_errors=True)


def check_build_output(output):
    warnings = []
    for line in output.splitlines():
        if WARNING.search(line) and line.strip() not in warnings:
            warnings.append(line.strip())
    if warnings:
        raise ReleaseError("the build warned (fix the cause, do not filter it):\n  %s"
                           % "\n  ".join(warnings))


def check_artifacts(dist_dir):
    sdists = glob.glob(os.path.join(dist_dir, "connlocal_shim-*.tar.gz"))
    wheels = glob.glob(os.path.join(dist_dir, "connlocal_shim-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise ReleaseError("expected one sdist and one wheel in %s, found %s" % (
            dist_dir, ", ".join(map(os.path.basename, sdists + wheels)) or "nothing"))
    wheel, sdist = wheels[0], sdists[0]
    if not wheel.endswith("-py2.py3-none-any.whl"):
        raise ReleaseError("the wheel is not one for Python 2 and 3: %s" % os.path.basename(wheel))
    with zipfile.ZipFile(wheel) as bundle:
        metadata = [name for name in bundle.namelist() if name.endswith(".dist-info/METADATA")]
        text = bundle.read(metadata[0]).decode("utf-8")
    missing = [line for line in WRAPT_MARKERS if line not in text.splitlines()]
    if missing:
        raise ReleaseError("the wheel's METADATA lacks %s" % "; ".join(missing))
    with tarfile.open(sdist) as bundle:
        names = set(name.split("/", 1)[1] for name in bundle.getnames() if "/" in name)
        files = [member.name.split("/", 1)[1] for member in bundle.getmembers()
                 if member.isfile() and "/" in member.name]
    lacking = [name for name in SDIST_MUST_HAVE if name not in names]
    if lacking:
        raise ReleaseError("the sdist lacks %s (MANIFEST.in)" % ", ".join(lacking))
    tracked = tracked_files()
    if tracked is not None:
        missing, extra = sdist_differences(files, tracked)
        if missing or extra:
            raise ReleaseError(
                "the sdist is not every file git tracks but %s, as MANIFEST.in and "
                "docs/installation.rst say:%s%s" % (
                    ", ".join(SDIST_LEFT_OUT),
                    "\n  not in the sdist: %s" % ", ".join(missing) if missing else "",
                    "\n  in the sdist, not tracked: %s" % ", ".join(extra) if extra else ""))
    return sdist, wheel, len(names)


def tracked_files(root=ROOT):
    """The files git tracks in ``root`` (git ls-files), or None where ``root`` is not the top
    of a git checkout: an unpacked sdist outside one, or inside one (a tox env's temp dir in
    the checkout that CI runs), where git would answer for the enclosing repository."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if top.returncode != 0 or not os.path.samefile(
                top.stdout.decode("utf-8").strip(), root):
            return None
        output = subprocess.run(["git", "ls-files", "-z"], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None
    if output.returncode != 0:
        return None
    return [name for name in output.stdout.decode("utf-8").split("\0") if name]


def sdist_differences(names, tracked):
    """(tracked files missing from the sdist, files of the sdist that git does not track), for
    the sdist's files ``names`` (paths inside its top directory), leaving out SDIST_LEFT_OUT
    and what setuptools generates (SDIST_GENERATED)."""
    files = set(names)
    expected = set(tracked) - set(SDIST_LEFT_OUT)
    missing = sorted(expected - files)
    extra = sorted(name for name in files - expected if not SDIST_GENERATED.match(name))
    return missing, extra


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist-dir", default=os.path.join(ROOT, "dist"),
                        help="where to write the sdist and the wheel (default: dist/)")
    options = parser.parse_args(argv)
    dist_dir = os.path.abspath(options.dist_dir)
    try:
        bin_directory = tools.tools_venv(say, venv=RELEASE_VENV,
                                         requirements=RELEASE_REQUIREMENTS)
        python = os.path.join(bin_directory, "python")
        if not os.path.isdir(dist_dir):
            os.makedirs(dist_dir)
        clean(dist_dir)
        say("building the sdist and the wheel into %s" % os.path.relpath(dist_dir, ROOT))
        output = run([python, "-m", "build", "--no-isolation", "--outdir", dist_dir, ROOT],
                     "python -m build")
        check_build_output(output)
        sdist, wheel, count = check_artifacts(dist_dir)
        run([os.path.join(bin_directory, "twine"), "check", "--strict", sdist, wheel],
            "twine check --strict")
    except (ReleaseError, tools.ToolError) as error:
        sys.stderr.write("build_release: %s\n" % error)
        return 1
    say("twine check --strict: passed")
    say("built %s (%d files) and %s" % (os.path.relpath(sdist, ROOT), count,
                                        os.path.relpath(wheel, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

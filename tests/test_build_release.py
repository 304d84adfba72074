"""scripts/build_release.py: the sdist is every file git tracks but SDIST_LEFT_OUT, as MANIFEST.in
and docs/installation.rst say, and the release build fails where they part. Python 3 (the
build runs outside the envs)."""
import importlib
import os
import shutil
import subprocess
import sys

import pytest

import support

ROOT = os.path.dirname(support.HERE)
pytestmark = pytest.mark.skipif(sys.version_info[0] < 3,
                                reason="scripts/build_release.py is a Python 3 tool")


@pytest.fixture(scope="module")
def build_release():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        yield importlib.import_module("build_release")
    finally:
        sys.path.remove(os.path.join(ROOT, "scripts"))


def test_a_file_more_or_less_than_git_tracks_is_named(build_release):
    tracked = ["setup.py", "tests/test_a.py", ".gitignore", "docs/index.rst"]
    names = ["setup.py", "tests/test_a.py", "PKG-INFO",
             "connlocal_shim.egg-info/SOURCES.txt", "build/leftover.py"]
    assert build_release.sdist_differences(names, tracked) == (
        ["docs/index.rst"], ["build/leftover.py"])
    assert build_release.sdist_differences(names[:-1] + ["docs/index.rst"], tracked) == ([], [])


def test_a_directory_inside_a_checkout_is_not_a_checkout(build_release, tmpdir):
    # An unpacked sdist in a tox env's temp dir inside the checkout CI runs: git answered for the
    # enclosing repository (nothing tracked there), and the comparison below copied no file.
    if shutil.which("git") is None:
        pytest.skip("no git program to ask")
    repository = tmpdir.mkdir("repository")
    subprocess.check_call(["git", "init", "-q", str(repository)])
    repository.join("tracked.txt").write("x")
    subprocess.check_call(["git", "add", "tracked.txt"], cwd=str(repository))
    unpacked = repository.mkdir(".tox").mkdir("unpacked-sdist")
    unpacked.join("setup.py").write("")
    assert build_release.tracked_files(str(repository)) == ["tracked.txt"]
    assert build_release.tracked_files(str(unpacked)) is None
    assert build_release.tracked_files(str(tmpdir.mkdir("elsewhere"))) is None


def test_the_sdist_of_the_checkout_is_every_tracked_file_but_those_left_out(build_release,
                                                                            tmpdir):
    tracked = build_release.tracked_files(ROOT)
    if tracked is None:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare the sdist with")
    # setup.py sdist on a copy of the tracked files, as they are in the working tree.
    copy = tmpdir.mkdir("checkout")
    for name in tracked:
        if os.path.exists(os.path.join(ROOT, name)):
            target = copy.join(name)
            target.dirpath().ensure(dir=True)
            shutil.copy(os.path.join(ROOT, name), str(target))
    dist = tmpdir.mkdir("dist")
    process = subprocess.Popen([sys.executable, "setup.py", "-q", "sdist", "--formats=gztar",
                                "--dist-dir", str(dist)], cwd=str(copy),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = process.communicate()[0].decode("utf-8", "replace")
    assert process.returncode == 0, out
    import tarfile

    (archive,) = dist.listdir()
    with tarfile.open(str(archive)) as bundle:
        names = [member.name.split("/", 1)[1] for member in bundle.getmembers()
                 if member.isfile() and "/" in member.name]
    present = [name for name in tracked if os.path.exists(os.path.join(ROOT, name))]
    assert build_release.sdist_differences(names, present) == ([], [])


def test_manifest_and_the_installation_page_say_what_is_left_out(build_release):
    left_out = ", ".join(build_release.SDIST_LEFT_OUT)
    with open(os.path.join(ROOT, "MANIFEST.in")) as handle:
        manifest = " ".join(handle.read().replace("#", " ").split())
    with open(os.path.join(ROOT, "docs", "installation.rst")) as handle:
        page = " ".join(handle.read().split())
    assert "The sdist is every file of the repository but %s:" % left_out in manifest
    assert "The sdist is every file of the repository but ``%s``:" % left_out in page

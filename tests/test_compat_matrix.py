"""compat_matrix/probe.py in this env: every check it can run passes here, and a feature that
is present but broken makes its check fail (the matrix must never say "works" for it).

Each case runs in a fresh interpreter, as ``python -m compat_matrix`` runs the probe."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT_MATRIX = os.path.join(os.path.dirname(HERE), "compat_matrix")


def run_probe_code(code):
    """Run ``code`` with compat_matrix/ first on sys.path (as probe.py runs) and return the JSON
    it prints last."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n%s" % (COMPAT_MATRIX, code)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=COMPAT_MATRIX,
    )
    out, err = process.communicate()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert process.returncode in (0, 1), "probe crashed:\n%s\n%s" % (out, err)
    return json.loads(out.strip().splitlines()[-1])


def test_the_probe_passes_every_check_it_can_run_here():
    import django

    record = run_probe_code(
        "import json, shutil, tempfile, probe\n"
        "directory = tempfile.mkdtemp()\n"
        "record = probe.probe(directory)\n"
        "shutil.rmtree(directory)\n"
        "print(json.dumps(record))\n"
    )
    assert record["django"] == django.get_version()
    installed = os.path.dirname(record["connlocal_shim_path"])
    assert not os.path.exists(os.path.join(installed, "setup.py")), \
        "the probe must import the installed connlocal_shim, not the checkout's"
    results = dict((key, value["result"]) for key, value in record["features"].items())
    assert set(results.values()) <= set(["passed", "not applicable"]), record["features"]
    assert record["diagnostics"]["result"] == "passed", record["diagnostics"]
    assert len(record["install_log"]["info"]) == 1, "install() logs one INFO line"


# Start Django as the probe does, break one feature in place, then run only that check.
SABOTAGE = r"""
import atexit, json, shutil, tempfile
import probe
directory = tempfile.mkdtemp()
atexit.register(shutil.rmtree, directory, True)
probe.configure(directory)
probe.start_django()
import connlocal_shim
from django.db import connections
%s
this = probe.Probe(connlocal_shim.status())
print(json.dumps(this.run(%r)))
"""

ONE_WRAPPER_FOR_ALL_THREADS = """
handler_class = type(connections)
original = handler_class.__getitem__
shared = {}

def __getitem__(self, alias):   # the shape of Django 1.3 without the backport
    if alias not in shared:
        shared[alias] = original(self, alias)
    return shared[alias]

handler_class.__getitem__ = __getitem__
"""

NO_THREAD_SHARING_CHECK = """
wrapper_class = type(connections["memory"])
for klass in wrapper_class.__mro__:
    if "validate_thread_sharing" in vars(klass):
        klass.validate_thread_sharing = lambda self: None   # present, but checks nothing
"""

ASSIGNMENT_FOR_EVERY_THREAD = """
handler_class = type(connections)
everyone = {}
original_get = handler_class.__getitem__

def __setitem__(self, alias, value):     # re-points the alias for every thread
    everyone[alias] = value

def __getitem__(self, alias):
    return everyone[alias] if alias in everyone else original_get(self, alias)

handler_class.__setitem__ = __setitem__
handler_class.__getitem__ = __getitem__
"""


@pytest.mark.parametrize("key, sabotage, failure", [
    ("thread_local_handler", ONE_WRAPPER_FOR_ALL_THREADS, "3 threads share 1 wrapper(s)"),
    ("thread_sharing", NO_THREAD_SHARING_CHECK, "used the unshared wrapper without DatabaseError"),
    ("handler_setitem", ASSIGNMENT_FOR_EVERY_THREAD, "another thread saw 'other'"),
], ids=["one-wrapper-for-all-threads", "sharing-checks-nothing", "assignment-for-every-thread"])
def test_a_feature_present_but_broken_fails_its_check(key, sabotage, failure):
    result = run_probe_code(SABOTAGE % (sabotage, key))
    assert result["result"] == "failed", result
    assert failure in result["detail"], result


# -- the runner, the test command and their tools (Python 3: they run outside the envs) -------

ROOT = os.path.dirname(HERE)
python3_only = pytest.mark.skipif(
    sys.version_info[0] < 3,
    reason="compat_matrix's runner and test command are Python 3 tools (run outside the envs)")


@pytest.fixture(scope="module")
def project_copy(tmpdir_factory):
    """What the two commands read and write, copied: compat_matrix/, tox.ini, the docs pages
    with the matrix's blocks, requirements/tox.txt. No .ci/.venv, no connlocal_shim/."""
    import shutil

    copy = str(tmpdir_factory.mktemp("project"))
    shutil.copytree(COMPAT_MATRIX, os.path.join(copy, "compat_matrix"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("tox.ini", "README.rst", os.path.join("docs", "matrix.rst"),
                 os.path.join("docs", "diagnostics.rst"), os.path.join("requirements", "tox.txt")):
        if not os.path.isdir(os.path.dirname(os.path.join(copy, name))):
            os.makedirs(os.path.dirname(os.path.join(copy, name)))
        shutil.copy(os.path.join(ROOT, name), os.path.join(copy, name))
    return copy


def run_tool(root, args=None, code=None, env=None):
    """``python -m compat_matrix ARGS`` (or ``code``, with ``root`` first on sys.path) in the
    copy; returns (exit code, stdout, stderr)."""
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    for name in list(environ):  # CI's own requirements (.ci/run) are not the copy's
        if name.startswith("CONNLOCAL_SHIM_REQUIRE_"):
            del environ[name]
    environ.update(env or {})
    if code is not None:
        command = [sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n%s" % (root, code)]
    else:
        command = [sys.executable, "-m", "compat_matrix"] + list(args)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environ, cwd=root)
    out, err = process.communicate()
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def digests(root, names):
    import hashlib

    found = {}
    for name in names:
        with open(os.path.join(root, name), "rb") as handle:
            found[name] = hashlib.sha256(handle.read()).hexdigest()
    return found


COMMITTED = ["compat_matrix/MATRIX.rst", "compat_matrix/matrix.html", "docs/matrix.rst",
             "docs/diagnostics.rst", "compat_matrix/results/py27-django13.json"]


@python3_only
def test_tox_envlist_is_read_as_tox_reads_it(project_copy):
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import tools\n"
        "print(tools.split_envlist('py27-django{12,13}\\n  py36-django111, py38-django{22,30}'))\n"
        "print(tools.expand_braces('py{27,36}-django{1,2}-x'))\n"))
    assert code == 0, err
    assert out.splitlines() == [
        "['py27-django12', 'py27-django13', 'py36-django111', 'py38-django22', 'py38-django30']",
        "['py27-django1-x', 'py27-django2-x', 'py36-django1-x', 'py36-django2-x']"]


@python3_only
def test_readme_support_table_covers_exactly_the_matrix(project_copy):
    """Each (Django, Python) pair of the matrix envs is a row of README's short support table
    ("1.4 - 1.10" spans the matrix's releases between), and no row names another."""
    import re

    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import runner, render\n"
        "for env in runner.matrix_envs():\n"
        "    print(render.django_release(env), render.python_release(env))\n"))
    assert code == 0, err
    pairs = [tuple(line.split()) for line in out.splitlines()]
    releases = [django for django, _ in pairs]
    with open(os.path.join(ROOT, "README.rst")) as handle:
        readme = handle.read()
    table = readme[readme.index("\nSupport\n"):readme.index("\nDocumentation\n")]
    rows = re.findall(r"^(\d[\d., -]*?\d)\s{2,}(\d\.\d+)\s{2,}\S", table, re.M)
    assert rows, table
    documented = []
    for djangos, python in rows:
        for part in djangos.split(","):
            if " - " in part:
                first, last = [release.strip() for release in part.split(" - ")]
                span = releases[releases.index(first):releases.index(last) + 1]
            else:
                span = [part.strip()]
            documented.extend((django, python) for django in span)
    assert sorted(documented) == sorted(pairs)


@python3_only
def test_an_interpreter_is_found_in_pyenv_versions_or_on_path_and_a_broken_shim_is_not(
        project_copy, tmpdir):
    version = "%d.%d" % sys.version_info[:2]
    pyenv = tmpdir.mkdir("pyenv")
    in_pyenv = pyenv.mkdir("versions").mkdir(version + ".99").mkdir("bin").join("python" + version)
    in_pyenv.mksymlinkto(sys.executable)
    shims = tmpdir.mkdir("shims")  # a pyenv shim of a version that is not selected
    shim = shims.join("python" + version)
    shim.write("#!/bin/sh\necho \"pyenv: python%s: command not found\" >&2\nexit 127\n" % version)
    shim.chmod(0o755)
    on_path = tmpdir.mkdir("bin").join("python" + version)
    on_path.mksymlinkto(sys.executable)
    empty = str(tmpdir.mkdir("empty"))
    find = ("from compat_matrix import tools\n"
            "print(tools.find_interpreter(%r, {'PYENV_ROOT': %r, 'PATH': %r}))\n")
    cases = [
        ((str(pyenv), os.pathsep.join([str(shims), str(on_path.dirpath())])), str(in_pyenv)),
        ((empty, os.pathsep.join([str(shims), str(on_path.dirpath())])), str(on_path)),
        ((empty, str(shims)), "None"),
    ]
    for (root, path), expected in cases:
        code, out, err = run_tool(project_copy, code=find % (version, root, path))
        assert code == 0, err
        assert out.strip() == expected, (root, path)


@python3_only
@pytest.mark.parametrize("args", [
    ["--tests", "-e", "py27-django13,py313-django61"],
    ["--django", "1.3,6.1"],
], ids=["tests", "main-job"])
def test_a_missing_interpreter_is_named_before_anything_is_built(project_copy, tmpdir, args):
    nowhere = {"PYENV_ROOT": str(tmpdir.mkdir("no-pyenv")), "PATH": str(tmpdir.mkdir("no-bin"))}
    code, out, err = run_tool(project_copy, args, env=nowhere)
    assert code == 2, (out, err)
    assert "missing interpreters:" in err, err
    assert "python2.7 (for py27-django13)" in err and "python3.13 (for py313-django61)" in err
    assert "install Python 2.7 (pyenv install 2.7" in err, err
    assert out.splitlines()[0].startswith("compat_matrix"), out  # said something at once
    assert not os.path.exists(os.path.join(project_copy, ".ci")), "it made the tools venv"
    assert not os.path.exists(os.path.join(project_copy, "build")), "it wrote outputs"


@python3_only
def test_an_unknown_env_is_refused_naming_the_envs(project_copy):
    code, out, err = run_tool(project_copy, ["--tests", "-e", "py27-django99"])
    assert code == 2
    assert "not an env of tox.ini: py27-django99" in err and "py27-django13" in err, err


@python3_only
def test_the_test_command_runs_tox_on_the_envs_with_pytest_arguments(project_copy):
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import tests_command as t\n"
        "for argv in (['-e', 'py27-django13', '--', 'tests/test_routing.py', '-x'],\n"
        "             ['-e', 'a,b', '-e', 'c', '-p', '2'], ['-e', 'a,b', '-p', '1', '-r']):\n"
        "    o = t.parse(argv)\n"
        "    print(' '.join(t.tox_command('tox', o.envs, o)))\n"))
    assert code == 0, err
    assert out.splitlines() == ["tox -e py27-django13 -- tests/test_routing.py -x",
                                "tox -e a,b,c -p 2", "tox -e a,b -r"]


@python3_only
def test_the_main_job_leaves_the_committed_files_alone_unless_update(project_copy):
    before = digests(project_copy, COMMITTED)
    code, out, err = run_tool(project_copy, ["--render-only", "--no-color"])
    assert code == 0, err
    assert digests(project_copy, COMMITTED) == before, "a default run changed committed files"
    built = os.path.join(project_copy, "build", "compat_matrix", "MATRIX.rst")
    with open(built) as handle:
        assert "stored: " in handle.read()
    # --update writes them from the records: change one record, and its row follows.
    import json

    path = os.path.join(project_copy, "compat_matrix", "results", "py27-django13.json")
    with open(path) as handle:
        record = json.load(handle)
    record["django"] = "1.3.99"
    record["commit"] = "feedbee"
    with open(path, "w") as handle:
        json.dump(record, handle)
    code, out, err = run_tool(project_copy, ["--render-only", "--update", "--no-color"])
    assert code == 0, err
    for name in ("compat_matrix/MATRIX.rst", "docs/matrix.rst"):
        with open(os.path.join(project_copy, name)) as handle:
            text = handle.read()
        assert "1.3.99" in text and "feedbee" in text, name
    with open(os.path.join(project_copy, "docs", "diagnostics.rst")) as handle:
        assert "on Django 1.3.99, Python 2.7" in handle.read()


@python3_only
def test_the_table_marks_rows_probed_in_this_run_and_stored_ones(project_copy):
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import runner, render\n"
        "envs = runner.matrix_envs()\n"
        "records = runner.load(envs)\n"
        "fresh = {'py27-django13': dict(records[1][1], date='2031-01-02 03:04:05 UTC')}\n"
        "print(render.terminal_table(runner.load(envs, fresh), fresh=set(fresh)))\n"
        "print('-- rst --')\n"
        "print(render.rst_body(runner.load(envs, fresh), fresh=set(fresh)))\n"))
    assert code == 0, err
    out, rst = out.split("-- rst --")
    lines = out.splitlines()
    row = dict((line.split()[0], line) for line in lines if line[:1].isdigit() and "  " in line)
    assert "this run" in row["1.3"] and "stored" not in row["1.3"], row["1.3"]
    assert "stored " in row["1.2"] and "2026-" in row["1.2"], row["1.2"]
    assert "Rows: 1 probed in this run, 23 from the stored records" in out
    assert "this run: 2031-01-02" in rst and "stored: 20" in rst


@python3_only
def test_a_quiet_env_still_shows_progress(project_copy):
    code, out, err = run_tool(project_copy, code=(
        "import io, sys, threading\n"
        "from compat_matrix import runner\n"
        "runner.QUIET_SECONDS = 0.2\n"
        "seen = threading.Event()\n"
        "class Out(io.StringIO):\n"
        "    def write(self, text):\n"
        "        if 'still py27-django13 building' in text: seen.set()\n"
        "        return io.StringIO.write(self, text)\n"
        "captured = sys.stdout = Out()\n"
        "progress = runner.Progress(1)\n"
        "progress.say('py27-django13', 'building env', phase='building')\n"
        "ok = seen.wait(30)\n"
        "progress.stop()\n"
        "sys.stdout = sys.__stdout__\n"
        "print(ok)\n"
        "print(captured.getvalue())\n"))
    assert code == 0, err
    assert out.splitlines()[0] == "True", out  # a line came while the env said nothing
    assert "still py27-django13 building (0:00)" in out, out  # the env, its phase, how long


# -- system packages: named before anything is built (issue 23) --------------------------------

def fake_pyenv(tmpdir, versions=("2.7", "3.13")):
    """A PYENV_ROOT whose versions X.Y.99/bin/pythonX.Y say they are X.Y (all tools.py asks)."""
    root = tmpdir.mkdir("fake-pyenv")
    for version in versions:
        script = root.ensure("versions", version + ".99", "bin", "python" + version)
        script.write("#!/bin/sh\necho %s\n" % version)
        script.chmod(0o755)
    return str(root)


def fake_programs(tmpdir, name, programs):
    """A directory of executables that exit 0, for PATH."""
    directory = tmpdir.mkdir(name)
    for program in programs:
        script = directory.join(program)
        script.write("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
    return str(directory)


@python3_only
@pytest.mark.parametrize("args", [
    ["--tests", "-e", "py27-django13,py313-django61"],
    ["--django", "1.3,6.1"],
], ids=["tests", "main-job"])
def test_a_missing_system_package_is_named_before_anything_is_built(project_copy, tmpdir, args):
    # Interpreters found, but no mysql_config, mariadb_config, pkg-config nor C compiler: a
    # machine without MariaDB Connector/C's headers, where pip would fail building mysqlclient.
    environ = {"PYENV_ROOT": fake_pyenv(tmpdir), "PATH": str(tmpdir.mkdir("no-bin")), "CC": ""}
    outputs_before = files_under(os.path.join(project_copy, "build"))
    code, out, err = run_tool(project_copy, args, env=environ)
    assert code == 2, (out, err)
    assert "missing interpreter" not in err, err
    assert "missing system packages, needed to build the envs" in err, err
    assert "mysql_config or mariadb_config on PATH (MariaDB Connector/C, for mysqlclient), " \
        "for py27-django13, py313-django61: apt-get install libmariadb-dev-compat" in err, err
    assert "(for mysqlclient 2.2+), for py313-django61: apt-get install pkg-config " \
        "libmariadb-dev-compat" in err, err
    assert "all at once: apt-get install build-essential libmariadb-dev-compat pkg-config" in err
    assert not os.path.exists(os.path.join(project_copy, ".ci")), "it made the tools venv"
    assert files_under(os.path.join(project_copy, "build")) == outputs_before, "it wrote outputs"


def files_under(directory):
    """{path: mtime} of the files under ``directory`` (the copy is shared by this module)."""
    found = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(parent, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


@python3_only
def test_the_build_packages_an_env_needs_come_from_its_tox_deps(project_copy, tmpdir):
    everything = fake_programs(tmpdir, "all", ["cc", "mysql_config", "pkg-config"])
    no_pkg_config = fake_programs(tmpdir, "no-pkg-config", ["cc", "mariadb_config"])
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import tools\n"
        "parser = tools.read_tox_ini()\n"
        "for env in ('py27-django13', 'py313-django61', 'py27-django13-suite', 'docs'):\n"
        "    print(env, tools.env_deps(env, parser).get('mysqlclient'))\n"
        "print('uwsgi', tools.env_deps('py27-django13-gevent', parser).get('uwsgi'))\n"
        "envs = ['py27-django13', 'py313-django61', 'py27-django13-gevent', 'docs']\n"
        "print(tools.missing_build_packages(envs, {'PATH': %r}))\n"
        "for what, packages, envs in tools.missing_build_packages(envs, {'PATH': %r}):\n"
        "    print(packages, envs)\n"
        "for what, packages, envs in tools.missing_build_packages(['docs'], {'PATH': ''}):\n"
        "    print('docs needs', packages)\n" % (everything, no_pkg_config)))
    assert code == 0, err
    assert out.splitlines() == [
        "py27-django13 ==1.4.6",            # a factor condition
        "py313-django61 >=2.2,<2.4",
        "py27-django13-suite ==1.4.6",      # through {[django-suite]deps}
        "docs None",
        "uwsgi ==2.0.31",
        "[]",
        "pkg-config libmariadb-dev-compat ['py313-django61']",  # only mysqlclient 2.2+ asks it
    ], out


@python3_only
def test_a_missing_test_server_is_a_note_and_with_its_require_variable_a_stop(tmpdir):
    # A project whose server helpers find no PostgreSQL (exit 1) and find the others (exit 0).
    import shutil

    root = tmpdir.mkdir("project")
    shutil.copy(os.path.join(ROOT, "tox.ini"), str(root.join("tox.ini")))
    shutil.copytree(COMPAT_MATRIX, str(root.join("compat_matrix")),
                    ignore=shutil.ignore_patterns("__pycache__", "results"))
    for script, code in (("pg_cluster.py", 1), ("mariadb_server.py", 0), ("pgbouncer.py", 0)):
        root.ensure("tests", script).write("import sys\nsys.exit(%d)\n" % code)
    query = ("from compat_matrix import tools\n"
             "notes, required = tools.missing_test_services(%r, root=%r)\n"
             "print(repr((notes, required)))\n")
    envs = ["py27-django13", "py313-django61"]
    code, out, err = run_tool(str(root), code=query % (envs, str(root)))
    assert code == 0, err
    notes, required = eval(out.strip().splitlines()[-1])
    assert required == [], out
    assert [note for note in notes if "PostgreSQL" in note] == [
        "not found: a PostgreSQL server (initdb, pg_ctl) (apt-get install postgresql); its tests "
        "will be skipped, saying why (CONNLOCAL_SHIM_REQUIRE_POSTGRES=1 makes that a failure)"]
    assert not [note for note in notes if "MariaDB" in note or "PgBouncer" in note], notes
    code, out, err = run_tool(str(root), code=query % (envs, str(root)),
                              env={"CONNLOCAL_SHIM_REQUIRE_POSTGRES": "1"})
    notes, required = eval(out.strip().splitlines()[-1])
    assert required == ["not found: a PostgreSQL server (initdb, pg_ctl) (apt-get install "
                        "postgresql), and CONNLOCAL_SHIM_REQUIRE_POSTGRES=1"], out
    # The docs env runs no test: no server is asked of it.
    code, out, err = run_tool(str(root), code=query % (["docs"], str(root)))
    assert eval(out.strip().splitlines()[-1]) == ([], []), out


# -- a NOT RUN line names the cause and the build log (issue 23) -------------------------------

PIP_COMMAND = ("/w/.tox/py27-django13/bin/python -m pip install --no-binary Django "
               "Django>=1.3,<1.4 pytest>=4.6,<4.7 psycopg2-binary==2.8.6 mysqlclient==1.4.6 "
               "cx_Oracle<8")
# What tox 3 prints when pip cannot build mysqlclient 1.4.6 without mysql_config (pip's part as
# pip 20.3 on Python 2.7 printed it here, its paths shortened).
NO_MYSQL_CONFIG_27 = """\
py27-django13 installdeps: Django>=1.3,<1.4, pytest>=4.6,<4.7, mysqlclient==1.4.6, cx_Oracle<8
ERROR: invocation failed (exit code 1), logfile: /w/.tox/py27-django13/log/py27-django13-1.log
================================== log start ===================================
Collecting mysqlclient==1.4.6
    ERROR: Command errored out with exit status 1:
     command: /w/.tox/py27-django13/bin/python -c 'import sys, setuptools' egg_info
    Complete output (12 lines):
    sh: 1: mysql_config: not found
    sh: 1: mariadb_config: not found
    Traceback (most recent call last):
      File "setup_posix.py", line 29, in mysql_config
        raise EnvironmentError("%s not found" % (_mysql_config_path,))
    EnvironmentError: mysql_config not found
    ----------------------------------------
ERROR: Command errored out with exit status 1: python setup.py egg_info Check the logs for full command output.
=================================== log end ====================================
ERROR: could not install deps [Django>=1.3,<1.4, pytest>=4.6,<4.7, psycopg2-binary==2.8.6, mysqlclient==1.4.6, cx_Oracle<8]; v = InvocationError('PIP', 1)
""".replace("PIP", PIP_COMMAND * 2)
# mysqlclient 2.3 on Python 3.13 without pkg-config (pip 24's output).
NO_PKG_CONFIG_313 = """\
  Getting requirements to build wheel: finished with status 'error'
  error: subprocess-exited-with-error
      File "<string>", line 27, in find_package_name
    Exception: Can not find valid pkg-config name.
    Specify MYSQLCLIENT_CFLAGS and MYSQLCLIENT_LDFLAGS env vars manually
    [end of output]
  note: This error originates from a subprocess, and is likely not a problem with pip.
error: subprocess-exited-with-error
ERROR: could not install deps [Django>=6.1,<6.2, mysqlclient>=2.2,<2.4]; v = InvocationError('x', 1)
"""
NO_DISTRIBUTION = """\
ERROR: Could not find a version that satisfies the requirement mysqlclient==9.9
ERROR: No matching distribution found for mysqlclient==9.9
ERROR: could not install deps [mysqlclient==9.9]; v = InvocationError('%s', 1)
""" % PIP_COMMAND


@python3_only
@pytest.mark.parametrize("output, cause", [
    (NO_MYSQL_CONFIG_27, "EnvironmentError: mysql_config not found"),
    (NO_PKG_CONFIG_313, "Exception: Can not find valid pkg-config name."),
    (NO_DISTRIBUTION, "ERROR: No matching distribution found for mysqlclient==9.9"),
], ids=["mysql_config", "pkg-config", "no-distribution"])
def test_a_not_run_line_gives_the_build_logs_last_error_and_its_path(
        project_copy, tmpdir, output, cause):
    # run_env with a tox that prints what tox printed and fails, as a real build that failed.
    logs = tmpdir.mkdir("logs")
    tox = tmpdir.join("tox")
    tmpdir.join("output.txt").write(output)
    tox.write("#!/bin/sh\ncat %s\nexit 1\n" % tmpdir.join("output.txt"))
    tox.chmod(0o755)
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import runner\n"
        "progress = runner.Progress(1)\n"
        "context = {'tox': %r, 'env': None, 'sdist': 'x.zip', 'workdir': None,\n"
        "           'toxworkdir': %r, 'logs': %r, 'progress': progress}\n"
        "record = runner.run_env('py27-django13', context)\n"
        "progress.stop()\n"
        "print('REASON ' + record['reason'])\n" % (str(tox), str(tmpdir), str(logs))))
    assert code == 0, err
    log = str(logs.join("py27-django13-build.log"))
    expected = "tox --notest failed (exit 1): %s (build log %s)" % (cause, log)
    assert "NOT RUN: " + expected in out, out  # the progress line
    assert out.splitlines()[-1] == "REASON " + expected, out  # the record, the table's source
    assert "InvocationError" not in out.splitlines()[-1]
    with open(log) as handle:
        assert cause in handle.read()


@python3_only
def test_a_not_run_reason_without_a_cause_line_is_cut_between_words(project_copy):
    code, out, err = run_tool(project_copy, code=(
        "from compat_matrix import runner\n"
        "print(runner.last_error_line(%r))\n" % ("ERROR: could not install deps; v = "
                                                 "InvocationError('%s', 1)" % (PIP_COMMAND * 4))))
    assert code == 0, err
    line = out.strip()
    assert len(line) <= 300 and line.endswith(" ..."), line
    assert (line[:-4] + " ") in ("ERROR: could not install deps; v = InvocationError('%s', 1)"
                                 % (PIP_COMMAND * 4)), line  # whole words only


# -- --tests closes with its skips grouped by reason (issue 23) --------------------------------

@python3_only
def test_the_test_command_closes_with_this_runs_skips_grouped_by_reason(tmpdir):
    import time

    reports = tmpdir.mkdir("reports")
    sample = tmpdir.join("test_sample.py")
    sample.write("import pytest\n"
                 "@pytest.mark.parametrize('n', range(2))\n"
                 "def test_server(n):\n"
                 "    pytest.skip('no PostgreSQL server programs: apt-get install postgresql')\n"
                 "def test_runs():\n"
                 "    pass\n")
    for env in ("py27-django13", "py313-django61", "py312-django42"):
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml",
             str(reports.join(env + ".xml")), str(sample)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(tmpdir))
        assert process.wait() == 0, process.stdout.read()
    started = time.time()
    stale = str(reports.join("py312-django42.xml"))  # an earlier run's report
    os.utime(stale, (started - 60, started - 60))
    for env in ("py27-django13", "py313-django61"):
        path = str(reports.join(env + ".xml"))
        os.utime(path, (started + 1, started + 1))
    code, out, err = run_tool(ROOT, code=(
        "from compat_matrix import tests_command\n"
        "envs = ['py27-django13', 'py313-django61', 'py312-django42', 'docs']\n"
        "print('\\n'.join(tests_command.skip_summary(envs, %r, reports=%r)))\n"
        % (started, str(reports))))
    assert code == 0, err
    assert out.splitlines() == [
        "skipped, by reason (4 tests, in 2 of 2 envs):",
        "    4  no PostgreSQL server programs: apt-get install postgresql  "
        "[py27-django13 2, py313-django61 2]",
    ], out

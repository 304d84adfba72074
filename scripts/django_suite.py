"""Run Django's own test suite without and then with connlocal_shim, and compare.

    python scripts/django_suite.py [--cache-dir DIR] [--junitxml FILE]
                                   [--databases sqlite postgres mysql] [LABEL ...]

Runs under the Python of an env that has Django 1.2 or 1.3 (installed from its sdist:
``pip install --no-binary Django``), wrapt and connlocal_shim installed; the tox envs
``py27-django12-suite`` and ``py27-django13-suite`` are that (README.rst, "Django's own test
suite").  It downloads the sdist of the installed Django's exact version into the cache
directory (``pip download``), extracts its ``tests/`` into a fresh temporary directory for each
run, and runs Django's ``tests/runtests.py`` twice on each database of ``--databases``, each run
in a subprocess, against the installed Django:

1. as Django ships it;
2. with ``"connlocal_shim"`` first in runtests.py's ``ALWAYS_INSTALLED_APPS``, the list it makes
   ``INSTALLED_APPS``: the app cache imports ``connlocal_shim.models``, which installs the
   backport, as on a site that lists the app.  At the end of the run ``is_installed()`` must
   be true, ``status()`` must list patches and another thread must get another
   ``connections["default"]``.

Both runs get ``PYTHONHASHSEED=0`` (Python 2's default order, which those suites assume).

The databases: ``sqlite`` is Django's ``test_sqlite`` settings (in memory); ``postgres`` a
throwaway PostgreSQL cluster and ``mysql`` a throwaway MariaDB that this script starts
(tests/pg_cluster.py, tests/mariadb_server.py) and stops, with settings written next to
runtests.py in each run's copy (``connlocal_suite_settings``; aliases ``default`` and
``other``, as runtests.py's multi-database tests need). ``--server-labels`` restricts the
server databases' runs to some labels, where the whole suite would take too long. A server
that cannot start skips its database, with the reason; with CONNLOCAL_SHIM_REQUIRE_POSTGRES=1
(or _MYSQL=1) that is a failure. On PostgreSQL the runs of both kinds switch psycopg2 2.4.2+ to
autocommit as Django 1.2/1.3 cannot: a rollback first (see fix_psycopg2_autocommit()).

Nothing of Django's is changed on disk or in code, except ``settings.TEST_RUNNER``: a
``DjangoTestSuiteRunner`` whose result also records each test's outcome.  It prints both runs'
totals, the tests that fail or err with the shim and pass without it (regressions: there must
be none), and those that only fail without it.  One test is expected to fail with the shim
only: Django 1.2/1.3's ``ConnectionCreatedSignalTest.test_signal`` (run on the server
databases) checks ``django.db.connection``'s identity, which ticket #17258 changed, and which
Django 1.4 stopped checking (EXPECTED_WITH_17258: counted apart, and a regression still if it
fails at another line).  With ``--junitxml`` it writes one testcase per Django test and
database (one ``<testsuite>`` per database), as it came out with the shim: a regression is a
failure, a test that also fails without the shim is skipped ("fails without connlocal_shim
too: ..."), as is an expected one, Django's own skips stay skips.

Exit status: 0 when both runs ran tests, the shim was installed in the second and no test
regressed; 1 otherwise.  LABELs (e.g. ``basic transactions``) are handed to runtests.py, to
run part of the suite.
"""
from __future__ import print_function

import argparse
import glob
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

SHIM_APP = "connlocal_shim"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The name of the settings module a server database's runs get, written next to runtests.py.
SERVER_SETTINGS_MODULE = "connlocal_suite_settings"
DATABASES = ("sqlite", "postgres", "mysql")

# Outcomes a run records for each test.  "Bad" ones fail the test.
PASSED = "passed"
FAILURE = "failure"
ERROR = "error"
SKIPPED = "skipped"
EXPECTED_FAILURE = "expected failure"
UNEXPECTED_SUCCESS = "unexpected success"
BAD_OUTCOMES = (FAILURE, ERROR, UNEXPECTED_SUCCESS)

# Tests that must fail with the backport, because they check what ticket #17258 changed, and
# that Django 1.4 changed itself: {test id: (a line their failure's traceback must show, why)}.
# Any other failure of theirs is a regression like any.
EXPECTED_WITH_17258 = {
    "regressiontests.backends.tests.ConnectionCreatedSignalTest.test_signal": (
        'self.assertTrue(data["connection"] is connection)',
        "compares connection_created's wrapper with django.db.connection by identity; with "
        "#17258 django.db.connection is a proxy of the thread's wrapper, and Django 1.4 compares "
        "their DB-API connections instead (data[\"connection\"].connection is "
        "connection.connection)"),
}

# A whole suite runs in under 2 minutes here; a run still going after this has hung.
DEFAULT_RUN_TIMEOUT = 20 * 60

# XML 1.0 cannot carry these; test output sometimes does.
_XML_INVALID = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value):
    """Unicode text of a test id, message or traceback (byte strings on Python 2)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return u"%s" % (value,)
    except UnicodeDecodeError:  # a Python 2 object whose __str__ returns non-ASCII bytes
        return str(value).decode("utf-8", "replace")


def _last_line(traceback_text):
    """The exception line of a traceback: what a report shows as the reason."""
    lines = [line for line in _text(traceback_text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else u""


# --- the child: one run of runtests.py in this process ------------------------------------

def make_recording_runner(records):
    """A DjangoTestSuiteRunner subclass whose results also append (key, outcome, detail) to
    ``records``.  Built here because it needs the Django of the run imported."""
    from django.test.simple import DjangoTestSuiteRunner
    import django.test.simple as django_simple
    try:
        from django.utils import unittest  # Django 1.3: the unittest its tests are built with
    except ImportError:
        import unittest  # Django 1.2

    def key_of(test):
        key = _text(test.id())
        # Django 1.2.7's runtests.py adds one InvalidModelTestCase per invalid-model app, all
        # with the same id: tell them apart by the app they validate.
        label = getattr(test, "model_label", None)
        if label:
            key = u"%s (%s)" % (key, label)
        return key

    class RecordingResult(unittest.TextTestResult):
        def addSuccess(self, test):
            super(RecordingResult, self).addSuccess(test)
            records.append((key_of(test), PASSED, u""))

        def addFailure(self, test, err):
            super(RecordingResult, self).addFailure(test, err)
            records.append((key_of(test), FAILURE, _text(self.failures[-1][1])))

        def addError(self, test, err):
            super(RecordingResult, self).addError(test, err)
            records.append((key_of(test), ERROR, _text(self.errors[-1][1])))

        def addSkip(self, test, reason):
            super(RecordingResult, self).addSkip(test, reason)
            records.append((key_of(test), SKIPPED, _text(reason)))

        def addExpectedFailure(self, test, err):
            super(RecordingResult, self).addExpectedFailure(test, err)
            records.append((key_of(test), EXPECTED_FAILURE, u""))

        def addUnexpectedSuccess(self, test):
            super(RecordingResult, self).addUnexpectedSuccess(test)
            records.append((key_of(test), UNEXPECTED_SUCCESS, u"unexpected success"))

    # The runner run_suite() uses in the Django of the run: 1.2's DjangoTestRunner (Ctrl-C and
    # failfast handling over TextTestRunner), 1.3's plain TextTestRunner.  Both take resultclass.
    text_runner_class = getattr(django_simple, "DjangoTestRunner", unittest.TextTestRunner)

    class RecordingTestRunner(DjangoTestSuiteRunner):
        def run_suite(self, suite, **kwargs):
            runner = text_runner_class(verbosity=self.verbosity, failfast=self.failfast,
                                       resultclass=RecordingResult)
            return runner.run(suite)

    return RecordingTestRunner


def connections_are_thread_local():
    """Whether another thread gets another wrapper for connections["default"]: Django 1.2/1.3
    share one object between threads, the backport gives each thread its own."""
    from django.db import DEFAULT_DB_ALIAS, connections
    seen = []
    thread = threading.Thread(target=lambda: seen.append(connections[DEFAULT_DB_ALIAS]))
    thread.start()
    thread.join()
    return seen[0] is not connections[DEFAULT_DB_ALIAS]


def shim_state():
    """What connlocal_shim says about this process (imported at all? installed? patches?),
    and whether connections are thread-local at the end of the run."""
    state = {"imported": SHIM_APP in sys.modules,
             "thread_local_connections": connections_are_thread_local()}
    if state["imported"]:
        import connlocal_shim
        status = connlocal_shim.status()
        state.update(
            installed=connlocal_shim.is_installed(),
            patches=len(status["patches"]),
            rebuilt_classes=len(status["rebuilt_classes"]),
            refused=_text(status["refused"]) if status["refused"] else None,
            version=connlocal_shim.__version__,
            file=os.path.dirname(os.path.abspath(connlocal_shim.__file__)),
        )
    return state


def present_labels(tests_dir, labels):
    """The labels of ``labels`` (app names, or app.TestCase...) whose app is one of this suite's:
    a directory of modeltests/ or regressiontests/, or a django.contrib app. runtests.py stops
    at an unknown one, and the two suites do not have the same apps."""
    import django.contrib

    contrib = os.path.dirname(os.path.abspath(django.contrib.__file__))
    found = []
    for label in labels:
        app = label.split(".")[0]
        if any(os.path.isdir(os.path.join(directory, app)) for directory in (
                os.path.join(tests_dir, "modeltests"), os.path.join(tests_dir, "regressiontests"),
                contrib)):
            found.append(label)
    return found


def fix_psycopg2_autocommit():
    """Django 1.2/1.3 create and destroy a test database after switching the connection to
    autocommit with ``connection.autocommit = True`` where the DB-API connection has that
    attribute: psycopg2 has had it since 2.4.2, and refuses it inside a transaction, which the
    backend's first cursor() opened (SET TIME ZONE). A rollback first, as psycopg2 before 2.4.2
    did inside set_isolation_level(). Patched on the class, in this process only: Django's
    files are not changed."""
    from django.db.backends.creation import BaseDatabaseCreation

    original = BaseDatabaseCreation.set_autocommit

    def set_autocommit(self):
        dbapi_connection = self.connection.connection
        if hasattr(dbapi_connection, "set_isolation_level"):  # psycopg2
            dbapi_connection.rollback()
        return original(self)

    set_autocommit.__doc__ = original.__doc__
    BaseDatabaseCreation.set_autocommit = set_autocommit


def run_once(args):
    """Child mode: Django's runtests.py from args.tests_dir, in this process; results to
    args.result as JSON."""
    started = time.time()
    tests_dir = os.path.abspath(args.tests_dir)
    # As `cd tests && python runtests.py --settings=test_sqlite` does: tests/ first on sys.path
    # (runtests, test_sqlite, urls and the test apps are imported from there).
    sys.path.insert(0, tests_dir)
    os.chdir(tests_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = args.settings_module

    import django
    import runtests
    from django.conf import settings

    if args.fix_psycopg2_autocommit:
        fix_psycopg2_autocommit()

    if args.with_shim:
        # The list runtests.setup() makes settings.INSTALLED_APPS; first, as README.rst's
        # "Install" lists it.
        runtests.ALWAYS_INSTALLED_APPS.insert(0, SHIM_APP)

    records = []
    this_module = sys.modules[__name__]
    this_module.RecordingTestRunner = make_recording_runner(records)
    # runtests.django_tests() runs settings.TEST_RUNNER (get_runner() imports it by path).
    settings.TEST_RUNNER = "%s.RecordingTestRunner" % __name__

    crashed = None
    try:
        runtests.django_tests(args.verbosity, False, False, list(args.labels))
    except BaseException as exc:  # recorded in the result, then re-raised below
        crashed = exc
    result = {
        "django_version": django.get_version(),
        "django_file": os.path.dirname(os.path.abspath(django.__file__)),
        "with_shim": args.with_shim,
        "shim": shim_state(),
        "installed_apps_first": list(runtests.ALWAYS_INSTALLED_APPS[:3]),
        "records": records,
        "crashed": _text("%s: %s" % (type(crashed).__name__, crashed)) if crashed else None,
        "duration": time.time() - started,
    }
    with io.open(args.result, "w", encoding="utf-8") as handle:
        handle.write(_text(json.dumps(result, indent=1)))
    if crashed is not None:
        raise crashed
    return 0


# --- the parent: sdist, two runs, comparison ------------------------------------------------

def installed_django():
    """(version, package directory) of the Django this Python imports."""
    import django
    return django.get_version(), os.path.dirname(os.path.abspath(django.__file__))


def fetch_sdist(version, cache_dir):
    """Path of Django-<version>.tar.gz in cache_dir, downloaded with pip if not there."""
    return fetch_project_sdist("Django", version, cache_dir)


def fetch_project_sdist(project, version, cache_dir):
    """Path of the sdist (.tar.gz) of ``project==version`` in cache_dir/<project>-<version>/,
    downloaded with pip if not there.  Its file name is the index's (``South-0.8.4.tar.gz``,
    ``django_polymorphic-0.5.1.tar.gz``): whatever .tar.gz that directory holds."""
    target = os.path.join(cache_dir, "%s-%s" % (project, version))
    if not os.path.isdir(target):
        os.makedirs(target)
    found = glob.glob(os.path.join(target, "*.tar.gz"))
    if len(found) == 1 and tarfile.is_tarfile(found[0]):
        return found[0]
    for path in found:  # a download cut short
        os.remove(path)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", target, "%s==%s" % (project, version)]
    if _pip_version()[:2] in ((20, 2), (20, 3)):
        # pip 20.2/20.3 default to their legacy resolver on Python 2, whose `pip download`
        # fails with "assert req.link is not None" (save_linked_requirement) when the set
        # holds a constraint, e.g. one of a pip.conf's `constraint =` files; the new
        # resolver, opt-in there, saves only what it downloaded.
        command.insert(4, "--use-feature=2020-resolver")
    print("== downloading %s %s's sdist: %s" % (project, version, " ".join(command)))
    sys.stdout.flush()
    subprocess.check_call(command)
    found = glob.glob(os.path.join(target, "*.tar.gz"))
    if len(found) != 1:
        raise SystemExit("django_suite: pip left %d .tar.gz files for %s==%s in %s, not one"
                         % (len(found), project, version, target))
    return found[0]


def _pip_version():
    """pip's version as a tuple of ints, () if unknown."""
    try:
        import pip
    except ImportError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", pip.__version__)[:3])


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_tests(sdist, version, into):
    """Extract the sdist's tests/ under ``into``; return the path of that tests/."""
    prefix = "Django-%s/tests/" % version
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers()
                   if member.name.startswith(prefix)
                   and not member.name.startswith("/") and ".." not in member.name.split("/")]
        archive.extractall(into, members)
    tests_dir = os.path.join(into, prefix.rstrip("/"))
    if not os.path.isfile(os.path.join(tests_dir, "runtests.py")):
        raise SystemExit("django_suite: no tests/runtests.py in %s" % sdist)
    return tests_dir


def run_suite(sdist, version, with_shim, labels, verbosity, timeout, workdir, database="sqlite",
              server_settings=None):
    """One run of Django's suite in a subprocess, on a fresh copy of tests/; its JSON result
    (None if it wrote none), its exit code and whether it timed out. ``server_settings``: the
    text of the settings module of a server database (server_settings_text())."""
    name = "%s-%s" % (database, "with-shim" if with_shim else "without-shim")
    rundir = tempfile.mkdtemp(prefix=name + "-", dir=workdir)
    tests_dir = extract_tests(sdist, version, rundir)
    result_path = os.path.join(rundir, "result.json")
    command = [sys.executable, os.path.abspath(__file__), "--run-once",
               "--tests-dir", tests_dir, "--result", result_path,
               "--verbosity", str(verbosity)]
    if server_settings is not None:
        with io.open(os.path.join(tests_dir, SERVER_SETTINGS_MODULE + ".py"), "w",
                     encoding="utf-8") as handle:
            handle.write(_text(server_settings))
        command += ["--settings-module", SERVER_SETTINGS_MODULE]
    if database == "postgres":
        command.append("--fix-psycopg2-autocommit")
    if with_shim:
        command.append("--with-shim")
    if labels:
        kept = present_labels(tests_dir, labels)
        if kept != list(labels):
            print("== not in Django %s's suite, left out: %s" % (
                version, " ".join(label for label in labels if label not in kept)))
        if not kept:
            raise SystemExit("django_suite: none of the labels %s is in Django %s's suite"
                             % (" ".join(labels), version))
        labels = kept
    command.extend(labels)
    print("== Django %s's suite on %s %s connlocal_shim" % (
        version, database, "with" if with_shim else "without"))
    sys.stdout.flush()
    environ = dict(os.environ)
    # Python 2.7 randomises str hashes only when PYTHONHASHSEED asks it to (tox sets a random
    # one); Django 1.2/1.3's suites were written for a fixed order and have tests that depend on
    # it.  Both runs get the same, Python 2's default one.
    environ["PYTHONHASHSEED"] = "0"
    process = subprocess.Popen(command, cwd=tests_dir, env=environ)
    timed_out = []

    def kill():
        timed_out.append(True)
        process.kill()

    timer = threading.Timer(timeout, kill)
    cpu_before = children_cpu_seconds()
    timer.start()
    try:
        code = process.wait()
    except BaseException:  # Ctrl-C, tox stopping the env: the run must not outlive us
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    result = None
    if os.path.isfile(result_path):
        with io.open(result_path, encoding="utf-8") as handle:
            result = json.load(handle)
        # CPU time as well as wall time: on a shared machine the latter says more about the
        # neighbours than about the suite.
        result["cpu"] = children_cpu_seconds() - cpu_before
    return result, code, bool(timed_out)


def children_cpu_seconds():
    """User + system CPU seconds of this process's waited-for children so far."""
    times = os.times()
    return times[2] + times[3]


def outcomes_by_test(result):
    """{test key: (outcome, detail)}, plus the keys in run order."""
    outcomes = {}
    order = []
    for key, outcome, detail in result["records"]:
        if key in outcomes:
            # A test reported twice (an error in tearDown after a failure, ...): keep the
            # worst outcome, as the test's.
            if outcomes[key][0] in BAD_OUTCOMES:
                continue
        else:
            order.append(key)
        outcomes[key] = (outcome, detail)
    return outcomes, order


def totals(outcomes):
    counts = dict.fromkeys((PASSED, FAILURE, ERROR, SKIPPED, EXPECTED_FAILURE,
                            UNEXPECTED_SUCCESS), 0)
    for outcome, _ in outcomes.values():
        counts[outcome] += 1
    return counts


def describe_totals(outcomes, duration, cpu):
    counts = totals(outcomes)
    text = "%d tests: %d passed, %d failures, %d errors, %d skipped" % (
        len(outcomes), counts[PASSED], counts[FAILURE], counts[ERROR], counts[SKIPPED])
    if counts[EXPECTED_FAILURE]:
        text += ", %d expected failures" % counts[EXPECTED_FAILURE]
    if counts[UNEXPECTED_SUCCESS]:
        text += ", %d unexpected successes" % counts[UNEXPECTED_SUCCESS]
    return text + " (%.0fs, %.0fs CPU)" % (duration, cpu)


def compare(without, with_shim):
    """Sort every test of either run: regressions, fixed, bad in both, missing with the shim."""
    regressions, fixed, bad_in_both, missing, new, expected = [], [], [], [], [], []
    for key in without["order"]:
        outcome, _ = without["outcomes"][key]
        if key not in with_shim["outcomes"]:
            missing.append(key)
            continue
        shim_outcome, shim_detail = with_shim["outcomes"][key]
        if shim_outcome in BAD_OUTCOMES:
            if outcome in BAD_OUTCOMES:
                bad_in_both.append(key)
            elif expected_with_17258(key, shim_detail):
                expected.append(key)
            else:
                regressions.append(key)
        elif outcome in BAD_OUTCOMES:
            fixed.append(key)
    for key in with_shim["order"]:
        if key not in without["outcomes"]:
            new.append(key)
    return dict(regressions=regressions, fixed=fixed, bad_in_both=bad_in_both,
                missing=missing, new=new, expected=expected)


def expected_with_17258(key, detail):
    """Whether a test that fails only with the shim is one of EXPECTED_WITH_17258, failing at
    the assertion Django 1.4 changed."""
    known = EXPECTED_WITH_17258.get(key.split(u" (", 1)[0])
    return known is not None and known[0] in _text(detail)


def junit_case(suite, key, elapsed=None):
    """A <testcase> for a test key: classname is what precedes the last dot of its id."""
    test_id = key.split(u" (", 1)[0]
    classname, _, name = test_id.rpartition(u".")
    if key != test_id:
        name += key[len(test_id):]
    attrs = {"classname": classname or u"django", "name": name}
    if elapsed is not None:
        attrs["time"] = "%.3f" % elapsed
    return ET.SubElement(suite, "testcase", attrs)


def _xml(text):
    return _XML_INVALID.sub(u"?", _text(text))


def junit_suite(root, name, without, with_shim, comparison, shim_ok, shim_message):
    """A <testsuite> in ``root``: one testcase per test of either run, as it came out with the
    shim (module docstring), and one for the check that the shim was installed.  Returns the
    counts written."""
    suite = ET.SubElement(root, "testsuite", {"name": name})
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    regressions = set(comparison["regressions"])
    bad_in_both = set(comparison["bad_in_both"])
    expected = set(comparison["expected"])

    def add(key, kind, message=u"", body=u""):
        case = junit_case(suite, key)
        counts["tests"] += 1
        if kind is not None:
            element = ET.SubElement(case, kind, {"message": _xml(message)[:1000]})
            element.text = _xml(body)
            counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]] += 1

    check = ET.SubElement(suite, "testcase", {"classname": "django_suite",
                                              "name": "connlocal_shim_installed"})
    counts["tests"] += 1
    if not shim_ok:
        ET.SubElement(check, "failure", {"message": _xml(shim_message)}).text = _xml(shim_message)
        counts["failures"] += 1

    for key in with_shim["order"]:
        outcome, detail = with_shim["outcomes"][key]
        if key in regressions:
            before = without["outcomes"][key][0]
            add(key, "failure", u"regression: %s with connlocal_shim, %s without it: %s"
                % (outcome, before, _last_line(detail)), detail)
        elif key in expected:
            add(key, "skipped", u"fails with connlocal_shim as expected (#17258): %s"
                % EXPECTED_WITH_17258[key.split(u" (", 1)[0]][1])
        elif key in bad_in_both:
            before = without["outcomes"][key][1]
            add(key, "skipped", u"fails without connlocal_shim too: %s" % _last_line(before))
        elif outcome in BAD_OUTCOMES:  # a test only the run with the shim ran
            add(key, "failure", u"%s with connlocal_shim (not run without it): %s"
                % (outcome, _last_line(detail)), detail)
        elif outcome == SKIPPED:
            add(key, "skipped", detail)
        else:
            add(key, None)
    for key in comparison["missing"]:
        add(key, "failure", u"ran without connlocal_shim, not with it")

    # One testcase a line, for people reading the report.
    suite.text = u"\n"
    for case in suite:
        case.tail = u"\n"
    for name, value in counts.items():
        suite.set(name, str(value))
    suite.set("time", "%.3f" % (without["duration"] + with_shim["duration"]))
    suite.tail = u"\n"
    return counts


def junit_unavailable(root, name, database, reason, required):
    """A <testsuite> for a database whose server could not start: one testcase, skipped with
    the reason, or failed where it is required."""
    suite = ET.SubElement(root, "testsuite", {"name": name, "tests": "1", "time": "0",
                                              "failures": "1" if required else "0",
                                              "errors": "0", "skipped": "0" if required else "1"})
    case = ET.SubElement(suite, "testcase", {"classname": "django_suite",
                                             "name": "%s_available" % database})
    ET.SubElement(case, "failure" if required else "skipped", {"message": _xml(reason)})
    suite.tail = u"\n"


def write_junit(path, root):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def check_shim(result):
    """(ok, message) for the run with the shim: installed, with patches."""
    shim = result["shim"]
    if not shim.get("imported"):
        return False, "connlocal_shim was never imported in the run with it"
    if not shim.get("installed"):
        return False, "connlocal_shim was imported but not installed (refused: %s)" % (
            shim.get("refused"),)
    if not shim.get("patches"):
        return False, "connlocal_shim installed but listed no patches"
    if not shim.get("thread_local_connections"):
        return False, ("connlocal_shim installed, but at the end of the run another thread "
                       "got the same connections['default'] object")
    return True, ("connlocal_shim %s installed from %s: %d patches, %d rebuilt classes; "
                  "connections thread-local at the end of the run"
                  % (shim["version"], shim["file"], shim["patches"], shim["rebuilt_classes"]))


def print_tests(title, keys, run, limit=None):
    print("%s: %s" % (title, len(keys) if keys else "none"))
    for key in keys[:limit]:
        outcome, detail = run["outcomes"][key]
        print("  %s  [%s] %s" % (key, outcome, _last_line(detail)))
    if limit is not None and len(keys) > limit:
        print("  ... and %d more" % (len(keys) - limit))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See the module docstring and README.rst, \"Django's own test suite\".")
    parser.add_argument("labels", nargs="*", help="runtests.py labels (default: everything)")
    parser.add_argument("--cache-dir",
                        default=os.path.join(tempfile.gettempdir(), "connlocal-shim-django-suite"),
                        help="where Django's sdists are downloaded (default: %(default)s)")
    parser.add_argument("--junitxml", help="write a junit XML report there")
    parser.add_argument("--envname", default=os.environ.get("CONNLOCAL_SHIM_TOXENV", "django-suite"),
                        help="the junit testsuite's name (default: the tox env's)")
    parser.add_argument("--verbosity", type=int, default=1, choices=(0, 1, 2),
                        help="runtests.py's verbosity (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT,
                        help="seconds after which a run is killed (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the extracted tests/ copies")
    parser.add_argument("--databases", nargs="+", default=["sqlite"], choices=DATABASES,
                        help="where to run the suite (default: sqlite)")
    parser.add_argument("--server-labels", default="",
                        help="runtests.py labels for the server databases' runs, space-separated "
                             "(default: the whole suite; LABELs given override it)")
    # Child mode (one run of runtests.py in this process), used by the parent.
    parser.add_argument("--run-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tests-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--with-shim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settings-module", default="test_sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--fix-psycopg2-autocommit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_once:
        return run_once(args)

    started = time.time()
    version, django_dir = installed_django()
    if not (version.startswith("1.2") or version.startswith("1.3")):
        print("django_suite: Django %s is installed; this compares Django 1.2/1.3's suites "
              "(the Djangos connlocal_shim patches)" % version)
        return 1
    sdist = fetch_sdist(version, os.path.abspath(args.cache_dir))
    print("== Django %s from %s; tests/ from %s (sha256 %s)"
          % (version, django_dir, sdist, sha256_of(sdist)))
    problems = []
    root = ET.Element("testsuites")
    root.text = u"\n"
    summary = []
    servers = DatabaseServers()
    try:
        for database in args.databases:
            name = "%s-%s" % (args.envname, database)
            labels = list(args.labels)
            if database != "sqlite" and args.server_labels and not labels:
                labels = args.server_labels.split()
            settings_text, reason = servers.settings_for(database)
            if reason is not None:
                required = os.environ.get(REQUIRE_VARIABLES[database]) == "1"
                print("== %s: %s%s" % (database, reason, " (required: a failure)"
                                       if required else " (skipped)"))
                if required:
                    problems.append("%s=1 and %s" % (REQUIRE_VARIABLES[database], reason))
                junit_unavailable(root, name, database, reason, required)
                summary.append((database, None, None, None, reason))
                continue
            outcome = compare_on(database, settings_text, sdist, version, labels, args,
                                 django_dir)
            problems.extend(outcome["problems"])
            counts = junit_suite(root, name, outcome["without"], outcome["with_shim"],
                                 outcome["comparison"], outcome["shim_ok"],
                                 outcome["shim_message"])
            summary.append((database, outcome["without"], outcome["with_shim"],
                            outcome["comparison"], " ".join(labels) or "the whole suite"))
            print("junit testsuite %s: %d tests, %d failures, %d skipped"
                  % (name, counts["tests"], counts["failures"], counts["skipped"]))
    finally:
        servers.stop()

    print()
    print("== Django %s's own test suite, per database (without / with the shim / new "
          "failures)" % version)
    for database, without, with_shim, comparison, what in summary:
        if without is None:
            print("%-9s not run: %s" % (database, what))
            continue
        print("%-9s %s: failing %d / %d / %d new, %d expected with #17258 (%d tests; %s)" % (
            database, what, bad_count(without), bad_count(with_shim),
            len(comparison["regressions"]), len(comparison["expected"]),
            len(with_shim["outcomes"]),
            describe_totals(with_shim["outcomes"], with_shim["duration"], with_shim["cpu"])))
    if args.junitxml:
        write_junit(args.junitxml, root)
        print("junit report %s" % args.junitxml)
    for problem in problems:
        print("problem: " + problem)
    print("== %s after %.0fs" % ("FAILED" if problems else "ok", time.time() - started))
    return 1 if problems else 0


def bad_count(run):
    return sum(1 for outcome, _ in run["outcomes"].values() if outcome in BAD_OUTCOMES)


def compare_on(database, settings_text, sdist, version, labels, args, django_dir):
    """Both runs on one database and their comparison: a dict of problems, without, with_shim,
    comparison, shim_ok and shim_message."""
    workdir = tempfile.mkdtemp(prefix="connlocal-shim-django-suite-")
    problems = []
    runs = {}
    try:
        for with_shim in (False, True):
            result, code, timed_out = run_suite(sdist, version, with_shim, labels,
                                                args.verbosity, args.timeout, workdir,
                                                database, settings_text)
            label = "on %s %s connlocal_shim" % (database, "with" if with_shim else "without")
            if timed_out:
                problems.append("the run %s was killed after %.0fs" % (label, args.timeout))
            if result is None:
                problems.append("the run %s wrote no result (exit code %s)" % (label, code))
                result = dict(records=[], duration=0.0, cpu=0.0, shim={}, crashed=None,
                              django_version=version, django_file=django_dir)
            elif result["crashed"]:
                problems.append("the run %s crashed: %s" % (label, result["crashed"]))
            if result["django_version"] != version or result["django_file"] != django_dir:
                problems.append("the run %s imported Django %s from %s, not %s from %s" % (
                    label, result["django_version"], result["django_file"], version, django_dir))
            result["outcomes"], result["order"] = outcomes_by_test(result)
            if not result["outcomes"]:
                problems.append("the run %s ran no test" % label)
            runs[with_shim] = result
    finally:
        if args.keep:
            print("== extracted tests/ kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    without, with_shim = runs[False], runs[True]
    if without["shim"].get("imported"):
        problems.append("connlocal_shim was imported in the run on %s without it" % database)
    if without["shim"].get("thread_local_connections"):
        problems.append("connections were thread-local in the run on %s without connlocal_shim: "
                        "is this Django 1.2/1.3's?" % database)
    shim_ok, shim_message = check_shim(with_shim)
    if not shim_ok:
        problems.append("on %s: %s" % (database, shim_message))
    comparison = compare(without, with_shim)
    comparison["passed_again"] = confirm_regressions(
        comparison, sdist, version, args, database, settings_text
    )

    print()
    print("== Django %s's own test suite on %s (tests/runtests.py --settings=%s)" % (
        version, database, "test_sqlite" if settings_text is None else SERVER_SETTINGS_MODULE))
    print("without connlocal_shim: %s" % describe_totals(
        without["outcomes"], without["duration"], without["cpu"]))
    print("with connlocal_shim:    %s" % describe_totals(
        with_shim["outcomes"], with_shim["duration"], with_shim["cpu"]))
    print(shim_message)
    print_tests("regressions (fail with connlocal_shim, pass without it)",
                comparison["regressions"], with_shim)
    print_tests("failed once with connlocal_shim and passed when run again (a test that "
                "depends on wall-clock time on a busy machine): not counted as regressions",
                comparison["passed_again"], with_shim)
    print_tests("expected with #17258 (fail with connlocal_shim as with Django 1.4's change, "
                "pass without it)", comparison["expected"], with_shim)
    print_tests("fixed by connlocal_shim (fail without it, pass with it)",
                comparison["fixed"], without)
    print_tests("failing in both runs (fails without connlocal_shim too)",
                comparison["bad_in_both"], without, limit=20)
    if comparison["missing"]:
        print_tests("ran without connlocal_shim only", comparison["missing"], without, limit=20)
        problems.append("%d tests ran on %s without connlocal_shim only" % (
            len(comparison["missing"]), database))
    if comparison["new"]:
        print_tests("ran with connlocal_shim only", comparison["new"], with_shim, limit=20)
    if comparison["regressions"]:
        problems.append("%d tests regressed on %s with connlocal_shim" % (
            len(comparison["regressions"]), database))
        for key in comparison["regressions"]:
            print()
            print("-- regression on %s: %s (%s without connlocal_shim)"
                  % (database, key, without["outcomes"][key][0]))
            print(with_shim["outcomes"][key][1])
    return dict(problems=problems, without=without, with_shim=with_shim, comparison=comparison,
                shim_ok=shim_ok, shim_message=shim_message)


def confirm_regressions(comparison, sdist, version, args, database, settings_text):
    """Run each regression once more with the shim, alone: one that passes then was not the
    shim's (Django 1.2/1.3 have tests that fail when rendering takes over 0.2 s of wall-clock
    time, as it can on a loaded machine). Those leave comparison["regressions"] and are
    returned; one that fails again stays a regression."""
    labels = []
    for key in comparison["regressions"]:
        parts = key.split(".")
        if len(parts) >= 4 and parts[0] in ("regressiontests", "modeltests"):
            labels.append(".".join([parts[1]] + parts[-2:]))  # app.TestCase.test_method
    if not labels or len(labels) != len(comparison["regressions"]):
        return []
    workdir = tempfile.mkdtemp(prefix="connlocal-shim-django-suite-again-")
    try:
        result, _, _ = run_suite(sdist, version, True, labels, args.verbosity, args.timeout,
                                 workdir, database, settings_text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if result is None:
        return []
    outcomes = outcomes_by_test(result)[0]
    passed = [key for key in comparison["regressions"]
              if outcomes.get(key, ("missing",))[0] in (PASSED, SKIPPED)]
    comparison["regressions"] = [key for key in comparison["regressions"] if key not in passed]
    return passed


# --- the server databases ---------------------------------------------------------------------

REQUIRE_VARIABLES = {
    "sqlite": "CONNLOCAL_SHIM_REQUIRE_SQLITE",  # never unavailable
    "postgres": "CONNLOCAL_SHIM_REQUIRE_POSTGRES",
    "mysql": "CONNLOCAL_SHIM_REQUIRE_MYSQL",
}
# runtests.py's multi-database tests use both aliases; the test databases Django creates are
# test_<NAME>.
SUITE_DATABASE_NAMES = {"default": "django_default", "other": "django_other"}

SETTINGS_TEMPLATE = u'''# Written by connlocal-shim's scripts/django_suite.py for one run of Django's own suite on
# %(database)s (the throwaway server it started); the counterpart of test_sqlite.py.
DATABASES = %(databases)r
'''


class DatabaseServers(object):
    """The throwaway PostgreSQL cluster and MariaDB server, started on first use with the
    repository's test fixtures (tests/pg_cluster.py, tests/mariadb_server.py); stop() stops
    them (so do their atexit and SIGTERM handlers)."""

    def __init__(self):
        self.started = {}
        self.answers = {}

    def settings_for(self, database):
        """(settings module text or None for sqlite's own, None) or (None, why it is not
        available)."""
        if database == "sqlite":
            return None, None
        entries, reason = self.databases_for(database)
        if reason is not None:
            return None, reason
        return SETTINGS_TEMPLATE % {"database": database, "databases": entries}, None

    def databases_for(self, database):
        """(DATABASES of the server database, started on first use, None) or (None, why it is
        not available). Not for sqlite. A server started once serves every later call."""
        if database not in self.answers:
            self.answers[database] = self._start(database)
        return self.answers[database]

    def _start(self, database):
        tests_dir = os.path.join(REPOSITORY, "tests")
        if tests_dir not in sys.path:
            sys.path.insert(0, tests_dir)
        try:
            if database == "postgres":
                entries = self._postgres()
            else:
                entries = self._mysql()
        except Exception as error:  # reported as the database's reason, and failed if required
            return None, "%s: %s" % (type(error).__name__, error)
        if isinstance(entries, str):
            return None, entries
        return entries, None

    def _postgres(self):
        try:
            import psycopg2  # noqa: F401
        except ImportError as error:
            return "no PostgreSQL driver (%s): pip install psycopg2-binary" % error
        import pg_cluster

        bin_directory = pg_cluster.find_server_bin()
        if bin_directory is None:
            return "no PostgreSQL server programs (initdb, pg_ctl): %s" % pg_cluster.INSTALL_HINT
        cluster = pg_cluster.PostgresCluster(bin_directory)
        self.started["postgres"] = cluster
        cluster.start(sorted(SUITE_DATABASE_NAMES.values()))
        print("== PostgreSQL %s on %s:%s for Django's suite" % (
            cluster.version, pg_cluster.HOST, cluster.port))
        return dict((alias, {
            "ENGINE": "django.db.backends.postgresql_psycopg2", "NAME": name,
            "USER": pg_cluster.SUPERUSER, "HOST": pg_cluster.HOST, "PORT": str(cluster.port),
        }) for alias, name in SUITE_DATABASE_NAMES.items())

    def _mysql(self):
        try:
            import MySQLdb  # noqa: F401
        except ImportError as error:
            return "no MySQL driver (MySQLdb: %s): pip install mysqlclient" % error
        import mariadb_server

        programs = mariadb_server.find_server()
        if programs is None:
            return "no MariaDB server programs: %s" % mariadb_server.INSTALL_HINT
        server = mariadb_server.MariaDBServer(programs)
        self.started["mysql"] = server
        server.start(sorted(SUITE_DATABASE_NAMES.values()))
        print("== MariaDB %s on %s:%s for Django's suite" % (
            server.version, mariadb_server.HOST, server.port))
        # The test databases in utf8, as Django 1.2/1.3's docs have them made (TEST_CHARSET);
        # sql_mode and engine are MariaDB 10.11's (strict, InnoDB): docs/databases.rst.
        return dict((alias, {
            "ENGINE": "django.db.backends.mysql", "NAME": name,
            "USER": mariadb_server.SUPERUSER, "HOST": mariadb_server.HOST,
            "PORT": str(server.port), "TEST_CHARSET": "utf8",
        }) for alias, name in SUITE_DATABASE_NAMES.items())

    def stop(self):
        for server in self.started.values():
            server.stop()
        self.started.clear()
        self.answers.clear()


if __name__ == "__main__":
    sys.exit(main())

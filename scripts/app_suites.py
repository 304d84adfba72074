"""Run real apps' own test suites without and then with connlocal_shim, and compare.

    python scripts/app_suites.py [--cache-dir DIR] [--junitxml FILE]
                                 [--databases sqlite postgres] [APP ...]

The apps are reusable Django apps of the Django 1.2/1.3 era that use the database layer,
transactions or threads (APPS below: ten releases, each the last or one of the last that
supports Django 1.3).  Runs under the Python of an env with Django 1.2 or 1.3 (from its sdist),
wrapt and connlocal_shim installed: the tox envs ``py27-django12-apps`` and
``py27-django13-apps`` (docs/testing.rst, "Real apps' own test suites").  For each app it
downloads the release's sdist into the cache directory (``pip download``), and on each database
of ``--databases`` runs the app's tests twice, each run in a subprocess on a fresh copy of the
unpacked sdist:

1. as the app's authors ran them: their settings and test labels (the app's runtests.py,
   runtests.sh or test settings, see ``App.how``), or, for an app that ships none, a project
   of the kind its docs ask for (the app and the contrib apps it needs in INSTALLED_APPS, the
   settings and templates it requires) and ``manage.py test <app>``;
2. the same with ``"connlocal_shim"`` first in INSTALLED_APPS: the app cache imports
   ``connlocal_shim.models``, which installs the backport, as on a site that lists the app.
   At the end of the run ``is_installed()`` must be true, ``status()`` must list patches and
   another thread must get another ``connections["default"]``.

The databases: ``sqlite`` is the app's own settings (each ships sqlite ones); ``postgres`` a
throwaway PostgreSQL cluster this script starts (tests/pg_cluster.py, through django_suite.py's
DatabaseServers) and stops, which replaces the app's ``DATABASES`` (and, on PostgreSQL, switches
psycopg2 to autocommit as Django 1.2/1.3 cannot, both runs alike: django_suite.py's
fix_psycopg2_autocommit()).  Nothing of the app's is changed on disk: the settings each run uses
are a module written next to the sdist's copy (``connlocal_app_settings``) that imports the app's
own and sets what this docstring says, and ``TEST_RUNNER``, Django's ``DjangoTestSuiteRunner``
whose result also records each test's outcome (django_suite.py's).

It prints, per app and database, both runs' totals and the tests that fail or err with the shim
and pass without it (regressions: there must be none), then a table of all of them.  With
``--junitxml`` it writes one testcase per test (one ``<testsuite>`` per app and database), as it
came out with the shim: a regression is a failure, a test that also fails without the shim is
skipped ("fails without connlocal_shim too: ..."), and an app whose release does not support
the installed Django is one skipped testcase that says so.

Exit status: 0 when every app ran tests in both runs, the shim was installed in the second and
no test regressed; 1 otherwise.  APPs (distribution names, e.g. ``django-mptt``) restrict the
run to those apps.
"""
from __future__ import print_function

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import django_suite  # noqa: E402  (scripts/, beside this file)

SHIM_APP = django_suite.SHIM_APP
SETTINGS_MODULE = "connlocal_app_settings"
URLCONF_MODULE = "connlocal_app_urls"
DATABASES = ("sqlite", "postgres", "mysql")
# One app's suite runs in seconds here (django-treebeard's 651 tests, the longest, in 20-60 s);
# a run still going after this has hung.
DEFAULT_RUN_TIMEOUT = 10 * 60
# Lines of a run's output shown when it went wrong.
OUTPUT_TAIL = 60


class App(object):
    """One app's release and how its suite is run.

    ``settings``: the module of the app's own test settings, imported by the run's settings
    (None: the run's settings are ``extra`` alone).  ``extra``: settings text after it (for an
    app without settings of its own, the whole project).  ``labels``: the test labels its
    authors ran; empty: every app of INSTALLED_APPS, as ``manage.py test`` without labels.
    ``cwd`` and ``paths``: the directory the run starts in and the ones put first on sys.path,
    relative to the sdist's top directory.  ``templates``: {path: text} written under the run's
    template directory (TEMPLATE_DIRS), for an app whose tests render templates a project must
    provide.  ``django``: the Django feature releases (``"1.2"``, ``"1.3"``) the release supports.
    ``how``: the authors' command, for the report and docs/testing.rst."""

    def __init__(self, project, version, how, settings=None, extra=u"", labels=(), cwd=".",
                 paths=(".",), templates=None, django=("1.2", "1.3")):
        self.project = project
        self.version = version
        self.how = how
        self.settings = settings
        self.extra = extra
        self.labels = list(labels)
        self.cwd = cwd
        self.paths = list(paths)
        self.templates = dict(templates or {})
        self.django = tuple(django)


# A project for the apps that ship no test settings: what their docs ask a site to have.
PROJECT = u'''
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SITE_ID = 1
SECRET_KEY = "connlocal-shim-app-suites"
ROOT_URLCONF = %(urlconf)r
INSTALLED_APPS = %(apps)r
'''

CONTRIB = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
           "django.contrib.sites", "django.contrib.admin"]


def project(apps, more=u""):
    return PROJECT % {"urlconf": URLCONF_MODULE, "apps": list(apps)} + more


# django-registration 0.8 ships no templates: its docs list the ones a site writes, and its
# view tests render them (and one named for the tests) and read their context.
REGISTRATION_TEMPLATES = dict(
    ("registration/%s" % name, u"{{ form }}{{ site }}{{ activation_key }}\n")
    for name in ("activate.html", "activation_complete.html", "activation_email.txt",
                 "registration_closed.html", "registration_complete.html",
                 "registration_form.html", "test_template_name.html", "login.html",
                 "logout.html"))
REGISTRATION_TEMPLATES["registration/activation_email_subject.txt"] = u"Activate\n"

APPS = [
    App("django-mptt", "0.5.5", "tests/runtests.sh: django-admin.py test --settings=settings",
        settings="settings", cwd="tests", paths=("tests", ".")),
    App("django-taggit", "0.9.3",
        "taggit/tests/runtests.py: settings.configure(...); run_tests(['tests'])",
        extra=u'DATABASE_ENGINE = "sqlite3"\nINSTALLED_APPS = %r\n' % [
            "django.contrib.contenttypes", "taggit", "taggit.tests"],
        labels=["tests"]),
    App("django-tagging", "0.3.1", "django-admin.py test tests --settings=tagging.tests.settings",
        settings="tagging.tests.settings", labels=["tests"]),
    # sorl-thumbnail 11.12's and django-reversion 1.5.7's tests import django.utils.unittest,
    # new in Django 1.3 (on 1.2.7 both runs die with ImportError before any test).
    App("sorl-thumbnail", "11.12",
        "tests/runtests.py --settings=settings.default (its PIL engine)",
        settings="settings.default", cwd="tests", paths=("tests", ".", "sorl"),
        django=("1.3",)),
    App("django-guardian", "1.0.4",
        "python tests.py: guardian.testsettings, run_tests(['auth', 'guardian'])",
        settings="guardian.testsettings",
        extra=u"DJALOG_LEVEL = 40\nINSTALLED_APPS = %r\n" % ([
            "django.contrib.auth", "django.contrib.sessions", "django.contrib.contenttypes",
            "django.contrib.admin", "django.contrib.sites", "guardian"],),
        labels=["auth", "guardian"]),
    App("django-treebeard", "1.61", "manage.py test treebeard (a project with treebeard)",
        extra=project(CONTRIB + ["treebeard"]), labels=["treebeard"]),
    App("django-reversion", "1.5.7", "manage.py test reversion (a project with reversion)",
        extra=project(CONTRIB + ["reversion"]), labels=["reversion"], paths=("src",),
        django=("1.3",)),
    App("django-registration", "0.8",
        "manage.py test registration (a project with registration and its templates)",
        extra=project(CONTRIB + ["registration"],
                      u"ACCOUNT_ACTIVATION_DAYS = 7\nTEMPLATE_DIRS = [TEMPLATES]\n"),
        labels=["registration"], templates=REGISTRATION_TEMPLATES),
    App("django-model-utils", "1.3.1",
        "runtests.py: settings.configure(model_utils, model_utils.tests); run_tests(['tests'])",
        extra=project(["django.contrib.contenttypes", "model_utils", "model_utils.tests"]),
        labels=["tests"]),
    App("South", "0.8.4", "manage.py test south (a project with south, SKIP_SOUTH_TESTS = False)",
        extra=project(CONTRIB + ["south"], u"SKIP_SOUTH_TESTS = False\n"), labels=["south"]),
]

RUN_SETTINGS = u'''# Written by connlocal-shim's scripts/app_suites.py for one run of %(project)s %(version)s's
# tests (%(how)s), %(kind)s.
import os
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "connlocal_templates")
%(imports)s
%(extra)s
# --- the run's own ------------------------------------------------------------------------
%(database)s%(shim)sTEST_RUNNER = "__main__.RecordingTestRunner"
'''

URLCONF = u'''from django.conf.urls.defaults import patterns
urlpatterns = patterns("")
'''


# --- the child: one run of an app's tests in this process ------------------------------------

def run_once(args):
    """Child mode: the app's tests with the settings written in args.rundir; results to
    args.result as JSON."""
    started = time.time()
    for path in reversed(args.path):
        sys.path.insert(0, os.path.abspath(path))
    sys.path.insert(0, os.path.abspath(args.rundir))
    os.chdir(args.cwd)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE

    import django
    from django.conf import settings
    from django.test.utils import get_runner

    if args.fix_psycopg2_autocommit:
        django_suite.fix_psycopg2_autocommit()
    records = []
    sys.modules["__main__"].RecordingTestRunner = django_suite.make_recording_runner(records)

    labels = list(args.labels)
    if not labels:
        # manage.py test without labels tests every app; the run with the shim tests the same
        # ones (connlocal_shim's models module has no tests, but it is not the app's).
        labels = [app.split(".")[-1] for app in settings.INSTALLED_APPS if app != SHIM_APP]
    crashed = None
    try:
        # failfast as `manage.py test` passes it: DjangoTestSuiteRunner's own default is True.
        runner = get_runner(settings)(verbosity=args.verbosity, interactive=False,
                                      failfast=False)
        runner.run_tests(labels)
    except BaseException as exc:  # recorded in the result, then re-raised below
        crashed = exc
    result = {
        "django_version": django.get_version(),
        "django_file": os.path.dirname(os.path.abspath(django.__file__)),
        "with_shim": args.with_shim,
        "shim": django_suite.shim_state(),
        "installed_apps": list(settings.INSTALLED_APPS),
        "labels": labels,
        "records": records,
        "crashed": django_suite._text("%s: %s" % (type(crashed).__name__, crashed))
        if crashed else None,
        "duration": time.time() - started,
    }
    with io.open(args.result, "w", encoding="utf-8") as handle:
        handle.write(django_suite._text(json.dumps(result, indent=1)))
    if crashed is not None:
        raise crashed
    return 0


# --- the parent: sdists, two runs per app and database, comparison ----------------------------

def extract(sdist, into):
    """Unpack the sdist under ``into``; return its top directory."""
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers()
                   if not member.name.startswith("/") and ".." not in member.name.split("/")]
        archive.extractall(into, members)
        tops = set(member.name.split("/")[0] for member in members)
    if len(tops) != 1:
        raise SystemExit("app_suites: %s has %d top directories, not one" % (sdist, len(tops)))
    return os.path.join(into, tops.pop())


def run_settings(app, with_shim, databases):
    """The text of the run's settings module (RUN_SETTINGS)."""
    database = u""
    if databases is not None:
        database = u"DATABASES = %r\n" % ({"default": databases["default"]},)
    shim = u""
    if with_shim:
        # First, as README.rst's "Install" lists it.
        shim = u"INSTALLED_APPS = [%r] + list(INSTALLED_APPS)\n" % SHIM_APP
    return RUN_SETTINGS % {
        "project": app.project, "version": app.version, "how": app.how,
        "kind": "with connlocal_shim" if with_shim else "as its authors ran them",
        "imports": u"from %s import *  # noqa: F401,F403" % app.settings if app.settings else u"",
        "extra": app.extra, "database": database, "shim": shim,
    }


def run_app(app, sdist, with_shim, database, databases, args, workdir):
    """One run of an app's tests in a subprocess, on a fresh copy of its sdist: its JSON result
    (None if it wrote none), its exit code and whether it timed out."""
    name = "%s-%s-%s" % (app.project, database, "with-shim" if with_shim else "without-shim")
    rundir = tempfile.mkdtemp(prefix=name + "-", dir=workdir)
    top = extract(sdist, rundir)
    with io.open(os.path.join(rundir, SETTINGS_MODULE + ".py"), "w", encoding="utf-8") as handle:
        handle.write(run_settings(app, with_shim, databases))
    with io.open(os.path.join(rundir, URLCONF_MODULE + ".py"), "w", encoding="utf-8") as handle:
        handle.write(URLCONF)
    for path, text in app.templates.items():
        target = os.path.join(rundir, "connlocal_templates", *path.split("/"))
        if not os.path.isdir(os.path.dirname(target)):
            os.makedirs(os.path.dirname(target))
        with io.open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    result_path = os.path.join(rundir, "result.json")
    cwd = os.path.join(top, app.cwd)
    command = [sys.executable, os.path.abspath(__file__), "--run-once", "--rundir", rundir,
               "--cwd", cwd, "--result", result_path, "--verbosity", str(args.verbosity)]
    for path in app.paths:
        command += ["--path", os.path.join(top, path)]
    if database == "postgres":
        command.append("--fix-psycopg2-autocommit")
    if with_shim:
        command.append("--with-shim")
    for label in app.labels:
        command += ["--label", label]
    print("== %s %s's tests on %s %s connlocal_shim" % (
        app.project, app.version, database, "with" if with_shim else "without"))
    sys.stdout.flush()
    environ = dict(os.environ)
    environ["PYTHONHASHSEED"] = "0"  # as django_suite.py: the order these suites were written for
    environ.pop("PYTHONPATH", None)
    # The run's output goes to a file: the tracebacks of the tests that fail in both runs fill
    # thousands of lines (django-mptt's doctests on PostgreSQL); its end is shown when the run
    # went wrong.
    output_path = os.path.join(rundir, "output.txt")
    output = open(output_path, "wb")
    process = subprocess.Popen(command, cwd=cwd, env=environ, stdout=output,
                               stderr=subprocess.STDOUT)
    timed_out = []

    def kill():
        timed_out.append(True)
        process.kill()

    timer = threading.Timer(args.timeout, kill)
    cpu_before = django_suite.children_cpu_seconds()
    timer.start()
    try:
        code = process.wait()
    except BaseException:  # Ctrl-C, tox stopping the env: the run must not outlive us
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
        output.close()
    result = None
    if os.path.isfile(result_path):
        with io.open(result_path, encoding="utf-8") as handle:
            result = json.load(handle)
        result["cpu"] = django_suite.children_cpu_seconds() - cpu_before
    with io.open(output_path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    if result is None or result["crashed"] or code != 0:
        print("-- the last lines of its output (of %d):" % len(lines))
        print(u"\n".join(lines[-OUTPUT_TAIL:]))
    else:
        print("   %s" % (lines[-1] if lines else "(no output)"))
    sys.stdout.flush()
    return result, code, bool(timed_out)


def compare_app(app, sdist, database, databases, args, django_version):
    """Both runs of one app on one database and their comparison: a dict of problems, without,
    with_shim, comparison, shim_ok and shim_message."""
    workdir = tempfile.mkdtemp(prefix="connlocal-shim-app-suites-")
    problems = []
    runs = {}
    what = "%s %s on %s" % (app.project, app.version, database)
    try:
        for with_shim in (False, True):
            result, code, timed_out = run_app(app, sdist, with_shim, database, databases, args,
                                              workdir)
            label = "of %s %s connlocal_shim" % (what, "with" if with_shim else "without")
            if timed_out:
                problems.append("the run %s was killed after %.0fs" % (label, args.timeout))
            if result is None:
                problems.append("the run %s wrote no result (exit code %s)" % (label, code))
                result = dict(records=[], duration=0.0, cpu=0.0, shim={}, crashed=None,
                              django_version=django_version)
            elif result["crashed"]:
                problems.append("the run %s crashed: %s" % (label, result["crashed"]))
            if result["django_version"] != django_version:
                problems.append("the run %s imported Django %s, not %s" % (
                    label, result["django_version"], django_version))
            result["outcomes"], result["order"] = django_suite.outcomes_by_test(result)
            if not result["outcomes"]:
                problems.append("the run %s ran no test" % label)
            runs[with_shim] = result
    finally:
        if args.keep:
            print("== copies kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    without, with_shim = runs[False], runs[True]
    if without["shim"].get("imported"):
        problems.append("connlocal_shim was imported in the run of %s without it" % what)
    if without["shim"].get("thread_local_connections"):
        problems.append("connections were thread-local in the run of %s without connlocal_shim"
                        % what)
    shim_ok, shim_message = django_suite.check_shim(with_shim)
    if not shim_ok:
        problems.append("%s: %s" % (what, shim_message))
    comparison = django_suite.compare(without, with_shim)

    print()
    print("== %s's tests (%s)" % (what, app.how))
    print("without connlocal_shim: %s" % django_suite.describe_totals(
        without["outcomes"], without["duration"], without["cpu"]))
    print("with connlocal_shim:    %s" % django_suite.describe_totals(
        with_shim["outcomes"], with_shim["duration"], with_shim["cpu"]))
    print(shim_message)
    django_suite.print_tests("regressions (fail with connlocal_shim, pass without it)",
                             comparison["regressions"], with_shim)
    django_suite.print_tests("fixed by connlocal_shim (fail without it, pass with it)",
                             comparison["fixed"], without)
    django_suite.print_tests("failing in both runs (fails without connlocal_shim too)",
                             comparison["bad_in_both"], without, limit=40)
    for kind, run, where in (("missing", without, "without connlocal_shim only"),
                             ("new", with_shim, "with connlocal_shim only")):
        if comparison[kind]:
            django_suite.print_tests("ran %s" % where, comparison[kind], run, limit=20)
            problems.append("%d tests of %s ran %s" % (len(comparison[kind]), what, where))
    if comparison["regressions"] or comparison["expected"]:
        # django_suite's expected failures are Django's own tests: none is an app's.
        regressions = comparison["regressions"] + comparison["expected"]
        comparison["regressions"], comparison["expected"] = regressions, []
        problems.append("%d tests of %s regressed with connlocal_shim" % (len(regressions), what))
        for key in regressions:
            print()
            print("-- regression of %s: %s (%s without connlocal_shim)"
                  % (what, key, without["outcomes"][key][0]))
            print(with_shim["outcomes"][key][1])
    return dict(problems=problems, without=without, with_shim=with_shim, comparison=comparison,
                shim_ok=shim_ok, shim_message=shim_message)


def junit_not_supported(root, name, app, django_version):
    """A <testsuite> for an app whose release does not support this Django: one skipped case."""
    suite = ET.SubElement(root, "testsuite", {"name": name, "tests": "1", "time": "0",
                                              "failures": "0", "errors": "0", "skipped": "1"})
    case = ET.SubElement(suite, "testcase", {"classname": "app_suites",
                                             "name": "%s_supported" % app.project})
    ET.SubElement(case, "skipped", {"message": "%s %s supports Django %s only, not %s" % (
        app.project, app.version, " and ".join(app.django), django_version)})
    suite.tail = u"\n"


def table(rows):
    """The summary as an RST table (docs/testing.rst has it): one row per app and database."""
    header = ("app", "version", "database", "tests", "failing bare", "failing with shim",
              "new failures")
    body = [header] + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[column]) for row in body) for column in range(len(header))]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule, "  ".join(cell.ljust(width) for cell, width in zip(header, widths)), rule]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in body[1:]]
    return "\n".join(lines + [rule])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See the module docstring and docs/testing.rst, \"Real apps' own test suites\".")
    parser.add_argument("apps", nargs="*", metavar="APP",
                        help="distribution names of APPS to run (default: all): %s"
                        % " ".join(app.project for app in APPS))
    parser.add_argument("--cache-dir",
                        default=os.path.join(tempfile.gettempdir(), "connlocal-shim-app-suites"),
                        help="where the apps' sdists are downloaded (default: %(default)s)")
    parser.add_argument("--junitxml", help="write a junit XML report there")
    parser.add_argument("--envname", default=os.environ.get("CONNLOCAL_SHIM_TOXENV",
                                                            "app-suites"),
                        help="the prefix of the junit testsuites' names (default: the tox env's)")
    parser.add_argument("--verbosity", type=int, default=0, choices=(0, 1, 2),
                        help="the test runner's verbosity (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT,
                        help="seconds after which a run is killed (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the unpacked copies")
    parser.add_argument("--databases", nargs="+", default=["sqlite"], choices=DATABASES,
                        help="where to run the suites (default: sqlite)")
    # Child mode (one run of an app's tests in this process), used by the parent.
    parser.add_argument("--run-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rundir", help=argparse.SUPPRESS)
    parser.add_argument("--cwd", help=argparse.SUPPRESS)
    parser.add_argument("--path", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--with-shim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fix-psycopg2-autocommit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", dest="labels", action="append", default=[],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_once:
        return run_once(args)

    known = dict((app.project, app) for app in APPS)
    unknown = [name for name in args.apps if name not in known]
    if unknown:
        parser.error("not among the apps: %s (they are: %s)" % (
            " ".join(unknown), " ".join(sorted(known))))
    apps = [known[name] for name in args.apps] if args.apps else APPS

    started = time.time()
    django_version, django_dir = django_suite.installed_django()
    feature = ".".join(django_version.split(".")[:2])
    if feature not in ("1.2", "1.3"):
        print("app_suites: Django %s is installed; this compares apps' suites on Django 1.2/1.3 "
              "(the Djangos connlocal_shim patches)" % django_version)
        return 1
    print("== Django %s from %s" % (django_version, django_dir))
    problems = []
    root = ET.Element("testsuites")
    root.text = u"\n"
    rows = []
    servers = django_suite.DatabaseServers()
    try:
        for database in args.databases:
            databases = None
            if database != "sqlite":
                databases, reason = servers.databases_for(database)
                if reason is not None:
                    variable = django_suite.REQUIRE_VARIABLES[database]
                    required = os.environ.get(variable) == "1"
                    print("== %s: %s%s" % (database, reason, " (required: a failure)"
                                           if required else " (skipped)"))
                    if required:
                        problems.append("%s=1 and %s" % (variable, reason))
                    django_suite.junit_unavailable(root, "%s-%s" % (args.envname, database),
                                                   database, reason, required)
                    continue
            for app in apps:
                name = "%s-%s-%s" % (args.envname, app.project, database)
                if feature not in app.django:
                    print("== %s %s supports Django %s only: not run on %s" % (
                        app.project, app.version, " and ".join(app.django), django_version))
                    junit_not_supported(root, name, app, django_version)
                    continue
                sdist = django_suite.fetch_project_sdist(
                    app.project, app.version, os.path.abspath(args.cache_dir))
                outcome = compare_app(app, sdist, database, databases, args, django_version)
                problems.extend(outcome["problems"])
                counts = django_suite.junit_suite(
                    root, name, outcome["without"], outcome["with_shim"], outcome["comparison"],
                    outcome["shim_ok"], outcome["shim_message"])
                print("junit testsuite %s: %d tests, %d failures, %d skipped"
                      % (name, counts["tests"], counts["failures"], counts["skipped"]))
                rows.append((app.project, app.version, database,
                             len(outcome["with_shim"]["outcomes"]),
                             django_suite.bad_count(outcome["without"]),
                             django_suite.bad_count(outcome["with_shim"]),
                             len(outcome["comparison"]["regressions"])))
    finally:
        servers.stop()

    print()
    print("== the apps' own tests on Django %s, without and with connlocal_shim" % django_version)
    print(table(rows))
    if args.junitxml:
        django_suite.write_junit(args.junitxml, root)
        print("junit report %s" % args.junitxml)
    for problem in problems:
        print("problem: " + problem)
    print("== %s after %.0fs" % ("FAILED" if problems else "ok", time.time() - started))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

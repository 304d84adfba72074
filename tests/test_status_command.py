"""manage.py connlocal_status (management/commands/connlocal_status.py, diagnostics.py): run as
a site runs it, in a fresh process, and through call_command in the suite's own process."""
import json
import platform

import pytest

import support
from connlocal_shim import diagnostics
from connlocal_shim.management.commands.connlocal_status import Command

FEATURES = support.original_features()
BACKPORT = FEATURES.thread_local_handler == "missing"

# A site's manage.py: settings, then Django's command line (django.setup() on 1.7+ included).
MANAGE = r"""
import sys
import support
support.configure()
from django.core.management import execute_from_command_line
%s
execute_from_command_line(["manage.py"] + sys.argv[1:] + %r)
"""


def manage(*args, **kwargs):
    before = kwargs.pop("before", "")
    return support.run_python(MANAGE % (before, list(args)), **kwargs)


def test_it_reports_versions_features_backends_references_and_patches():
    import django

    out, _, _ = manage("connlocal_status")
    assert out.startswith("connlocal-shim %s on Django %s, Python %s (%s)\n" % (
        __import__("connlocal_shim").__version__, django.get_version(),
        platform.python_version(), platform.python_implementation()))
    assert "Database layer found: %s" % FEATURES.layout in out
    if BACKPORT:  # Django 1.2/1.3
        assert "installed: backported thread-local connections (ticket #17258)" in out
        assert "  thread-local django.db.connections       backported\n" in out
        assert "  thread-sharing API                       backported (allow_thread_sharing)" in out
        # The app cache loaded the site's sqlite backend: its class was rebuilt.
        assert "  django.db.backends.sqlite3.base: DatabaseWrapper\n" in out
        assert "  default (django.db.connection and every copy taken at import)\n" in out
        assert "django.db.connections._connections: each thread keeps" in out
        assert "none before Django 1.7" in out
    else:
        assert "installed: nothing to patch, Django %s has thread-local connections natively" \
            % django.get_version() in out
        assert "  thread-local django.db.connections       native\n" in out
        assert "Patches (0; connlocal_shim.uninstall() reverts them all):\n  none\n" in out
        assert "none (django.db.connection is Django's own proxy)" in out


def test_json_is_the_same_report_for_machines():
    import django

    out, _, _ = manage("connlocal_status", "--json")
    data = json.loads(out)
    assert data["django"] == django.get_version()
    assert data["python"] == platform.python_version()
    assert data["installed"] is True and data["refused"] is None
    assert data["features"] == dict(FEATURES.as_dict(), django_version=django.get_version())
    if BACKPORT:
        assert data["sharing_api"] == "attribute", "the backport gives allow_thread_sharing"
        assert data["features"]["sharing_api"] is None, "Django itself has no thread sharing"
        assert data["backends"]["django.db.backends.sqlite3.base"] == ["DatabaseWrapper"]
        assert data["redirected_references"] == ["default"]
        assert len(data["patches"]) >= 6
    else:
        assert data["sharing_api"] == FEATURES.sharing_api in ("attribute", "counter")
        assert data["patches"] == [] and data["rebuilt_classes"] == []
    if diagnostics.system_check_messages() is None:  # Django 1.2-1.6
        assert data["checks"] is None
    else:
        assert [m["id"] for m in data["checks"]] == ["connlocal_shim.I001"]


def test_the_json_option_is_declared_the_way_this_django_parses_options():
    from django.core.management.base import BaseCommand

    parser = Command().create_parser("manage.py", "connlocal_status")
    assert "--json" in parser.format_help()
    if hasattr(BaseCommand, "add_arguments"):  # Django 1.8+: argparse
        assert "option_list" not in vars(Command)
    else:  # Django 1.2-1.7: optparse
        assert "--json" in [option.get_opt_string() for option in Command.option_list]


def call_command_output(*args, **options):
    from django.core.management import call_command

    try:
        from io import StringIO
        buffer = StringIO()
        buffer.write("")
    except TypeError:  # Python 2: Django writes str
        from StringIO import StringIO
        buffer = StringIO()
    call_command("connlocal_status", *args, stdout=buffer, **options)
    return buffer.getvalue()


def test_call_command_reports_this_process():
    import connlocal_shim

    data = json.loads(call_command_output(json=True))
    status = connlocal_shim.status()
    assert data["patches"] == status["patches"]
    assert data["rebuilt_classes"] == status["rebuilt_classes"]
    text = call_command_output()
    assert "Patches (%d;" % len(status["patches"]) in text


REFUSED = r"""
import support
support.start_django_with_unknown_storage()
from connlocal_shim.management.commands.connlocal_status import Command
print(Command().handle(json=False))
"""


def test_a_refusal_is_reported_with_its_reason():
    out, _, _ = support.run_python(REFUSED)
    assert "REFUSED: Django " in out and "left unpatched" in out
    assert "neither a dict nor thread-local" in out
    assert "Patches (0;" in out
    if diagnostics.system_check_messages() is not None:  # Django 1.7+
        assert "connlocal_shim.W001 WARNING: connlocal_shim left Django unpatched" in out


NOT_INSTALLED = r"""
import support
support.configure(installed_apps=())
support.start_django()
from connlocal_shim.management.commands.connlocal_status import Command
print(Command().handle(json=False))
"""


def test_a_process_where_nothing_installed_it_says_how_to_install():
    out, _, _ = support.run_python(NOT_INSTALLED)
    assert "NOT INSTALLED in this process: add 'connlocal_shim' to INSTALLED_APPS" in out
    if BACKPORT:
        assert "MISSING (not backported)" in out


def test_the_report_comes_out_even_when_the_sites_checks_fail():
    """A misconfigured middleware is a system check error (Django 1.7+): the command must
    still run, and list it."""
    before = (
        "from django.conf import settings\n"
        "settings.CONNLOCAL_SHIM = {'ROUTE_WRITES': {'default': 'replica'}}\n"
    )
    out, err, code = manage("connlocal_status", before=before, expect_ok=False)
    assert code == 0, out + err
    if diagnostics.system_check_messages() is not None:
        assert "connlocal_shim.E001 ERROR: CONNLOCAL_SHIM['ROUTE_WRITES'] names 'replica'" in out


@pytest.mark.skipif(not BACKPORT, reason="the app cache matters only where models.py installs "
                    "(Django 1.2/1.3)")
def test_before_the_app_registry_the_command_loads_the_app_cache_as_a_site_does():
    code = (
        "import support\n"
        "support.configure()\n"
        "import connlocal_shim\n"
        "assert not connlocal_shim.is_installed()\n"
        "from connlocal_shim.management.commands.connlocal_status import Command\n"
        "print(Command().handle(json=False).splitlines()[2])\n"
    )
    out, _, _ = support.run_python(code)
    assert out.startswith("installed: backported")

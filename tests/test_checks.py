"""connlocal_shim's system checks on Django 1.7+ (checks.py), registered by apps.py.
connlocal_shim.E001 (the middleware's settings) is tested with the middleware."""
import pytest

import support

try:
    from django.core import checks as django_checks
except ImportError:  # Django 1.2-1.5
    django_checks = None

pytestmark = pytest.mark.skipif(
    not hasattr(django_checks, "register"),
    reason="no system check framework before Django 1.7 (connlocal_status reports instead)",
)


def ids(messages):
    return [message.id for message in messages]


def test_a_django_that_needs_no_backport_gets_an_info_not_an_error():
    from django.core.checks import run_checks

    from connlocal_shim.checks import check_backport_needed

    messages = check_backport_needed()
    assert ids(messages) == ["connlocal_shim.I001"]
    info = messages[0]
    assert info.level == django_checks.INFO and not info.is_serious()
    assert "has thread-local connections natively (ticket #17258)" in info.msg
    assert "SILENCED_SYSTEM_CHECKS = ['connlocal_shim.I001']" in info.hint
    assert "connlocal_shim.I001" in ids(run_checks()), "apps.py registers it"


def test_no_warning_when_install_did_not_refuse():
    from connlocal_shim.checks import check_install_refused

    assert check_install_refused() == []


REFUSED = r"""
import support
support.start_django_with_unknown_storage()  # ready() installs, which refuses
from django.core.checks import run_checks
for message in run_checks():
    if message.id.startswith("connlocal_shim."):
        print("%s %s | %s | %s" % (message.id, message.level, message.msg, message.hint))
"""


def test_a_refused_install_is_a_warning_naming_what_was_not_recognised():
    out, _, _ = support.run_python(REFUSED)
    lines = [line for line in out.splitlines() if line.startswith("connlocal_shim.")]
    assert len(lines) == 1, out  # W001, and no I001: the backport is not known to be unneeded
    assert lines[0].startswith("connlocal_shim.W001 %d | " % django_checks.WARNING)
    assert "neither a dict nor thread-local" in lines[0]
    assert "manage.py connlocal_status" in lines[0]


def test_every_check_is_registered_once_and_listed_for_connlocal_status():
    from connlocal_shim import checks

    assert checks.ALL_CHECKS == (
        checks.check_install_refused, checks.check_backport_needed, checks.check_pinning_settings,
    )
    registry = django_checks.registry.registry
    registered = registry.get_checks() if hasattr(registry, "get_checks") else \
        registry.registered_checks  # Django 1.7
    for check in checks.ALL_CHECKS:
        assert list(registered).count(check) == 1, check.__name__

"""System checks (Django 1.7+), registered by ``ConnlocalShimConfig.ready()``:

- ``connlocal_shim.E001`` (Error): settings.CONNLOCAL_SHIM is not usable: its MODE is
  unknown, or the pinning middleware is installed and the setting is not usable by it;
- ``connlocal_shim.W001`` (Warning): install() refused to patch an unknown database layer, or
  failed and undid what it had done;
- ``connlocal_shim.I001`` (Info): this Django has thread-local connections natively, the
  backport patches nothing (silence it with ``SILENCED_SYSTEM_CHECKS``).

``manage.py connlocal_status`` shows their messages too.
"""
from django.core import checks

from connlocal_shim.middleware import SETTING, config_errors
from connlocal_shim.observe import pinning_middleware_installed


def check_pinning_settings(app_configs=None, **kwargs):
    """connlocal_shim.E001: the middleware is installed (or CONNLOCAL_SHIM set) but the
    setting is not usable (an unknown MODE, observe mode with the middleware where the
    backport makes connections thread-local); the same problems make the middleware refuse
    to load, and install() refuse a bad MODE."""
    from django.conf import settings

    installed = pinning_middleware_installed(settings)
    if not installed and getattr(settings, SETTING, None) is None:
        return []
    return [
        checks.Error(
            problem,
            hint="See the docs' Routing page, 'Routing writes (middleware)', for the settings.",
            obj=SETTING,
            id="connlocal_shim.E001",
        )
        for problem in config_errors(settings, middleware=installed)
    ]


def check_install_refused(app_configs=None, **kwargs):
    """connlocal_shim.W001: install() found a database layer it does not know, or failed, and
    patched nothing (it also issued a ConnlocalShimWarning and logged it)."""
    from connlocal_shim.backport import status

    refused = status()["refused"]
    if not refused:
        return []
    return [checks.Warning(
        "connlocal_shim left Django unpatched: %s" % refused,
        hint="Something replaced django.db.connections or its wrappers before connlocal_shim "
        "installed, this Django's layout is new to it, or patching failed (the traceback is "
        "on the connlocal_shim logger); it changed nothing. Run manage.py connlocal_status to "
        "see what it found, and report it with your Django version.",
        id="connlocal_shim.W001",
    )]


def check_backport_needed(app_configs=None, **kwargs):
    """connlocal_shim.I001: connlocal_shim is in INSTALLED_APPS on a Django that has
    thread-local connections natively (Django 1.4+, ticket #17258): nothing to backport."""
    from connlocal_shim.backport import status

    record = status()
    features = record["features"]
    if record["refused"] or not features["has_connections"] or features["missing"]:
        return []
    return [checks.Info(
        "connlocal_shim: Django %s has thread-local connections natively (ticket #17258); "
        "the backport patches nothing here" % features["django_version"],
        hint="route_connections, separate_connection, shared_connection and the middleware "
        "work without 'connlocal_shim' in INSTALLED_APPS; keep it there for manage.py "
        "connlocal_status and these checks, or silence this message with "
        "SILENCED_SYSTEM_CHECKS = ['connlocal_shim.I001'].",
        id="connlocal_shim.I001",
    )]


# In the order connlocal_status lists their messages.
ALL_CHECKS = (check_install_refused, check_backport_needed, check_pinning_settings)

"""connlocal-shim: Django 1.4's thread-local database connections (ticket #17258) on Django
1.2/1.3, and one connection-routing API on every Django from 1.2 to 6.1.

Add ``"connlocal_shim"`` to INSTALLED_APPS, or call :func:`install` from wsgi.py::

    import connlocal_shim
    connlocal_shim.install()     # patches nothing on Django 1.4+
"""
from connlocal_shim.backport import (
    current_mode,
    get_original,
    install,
    is_installed,
    is_patched,
    set_mode,
    status,
    uninstall,
)
from connlocal_shim.exceptions import ConnlocalShimWarning
from connlocal_shim.routing import route_connections, separate_connection, shared_connection

__version__ = "0.1.0"

__all__ = [
    "ConnlocalShimWarning",
    "current_mode",
    "get_original",
    "install",
    "is_installed",
    "is_patched",
    "route_connections",
    "separate_connection",
    "set_mode",
    "shared_connection",
    "status",
    "uninstall",
]

try:  # The app registry arrived in Django 1.7; before it, models.py installs.
    from django.apps import config as _apps_config
except ImportError:
    _apps_config = None
# Django finds an app's single AppConfig by itself since 3.2 (where default_app_config is
# deprecated; removed in 4.1); before that, it must be named.
if _apps_config is not None and not hasattr(_apps_config, "APPS_MODULE_NAME"):
    default_app_config = "connlocal_shim.apps.ConnlocalShimConfig"
del _apps_config

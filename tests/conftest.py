"""The suite configures Django itself and starts it the way a site does, with connlocal_shim in
INSTALLED_APPS. Before that, a site module captures django.db.connection and a third-party
backend is loaded, so that install() finds both already there, as in a real process."""
import sys

import support

support.configure()

from django.db import connections  # noqa: E402

connections["thirdparty"]  # load the third-party backend before install
support.load_backends()  # every built-in and GIS backend whose driver is installed here
import legacy_module  # noqa: E402,F401 (captures django.db.connection before install)

support.start_django()


def pytest_report_header(config):
    import django

    import connlocal_shim

    features = support.original_features()
    return "Django %s, connlocal_shim %s on Python %s; backported: %s" % (
        django.get_version(),
        connlocal_shim.__version__,
        sys.version.split()[0],
        ", ".join(features.missing) or "nothing (all native)",
    )

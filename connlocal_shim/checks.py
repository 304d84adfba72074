"""System checks (Django 1.7+): settings.CONNLOCAL_SHIM as the pinning middleware needs it."""
from django.core import checks

from connlocal_shim.middleware import SETTING, config_errors

MIDDLEWARE_PATH = "connlocal_shim.middleware.ConnectionPinningMiddleware"


def check_pinning_settings(app_configs=None, **kwargs):
    """connlocal_shim.E001: the middleware is installed (or CONNLOCAL_SHIM set) but the
    setting is not usable; the same problems make the middleware refuse to load."""
    from django.conf import settings

    installed = []
    for name in ("MIDDLEWARE", "MIDDLEWARE_CLASSES"):
        installed.extend(getattr(settings, name, None) or ())
    if MIDDLEWARE_PATH not in installed and getattr(settings, SETTING, None) is None:
        return []
    return [
        checks.Error(
            problem,
            hint="See the README's 'Routing writes' section for the settings.",
            obj=SETTING,
            id="connlocal_shim.E001",
        )
        for problem in config_errors(settings)
    ]

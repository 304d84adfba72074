"""The AppConfig of connlocal_shim (Django 1.7+): ready() installs the backport, which on
these Djangos finds everything native and patches nothing."""
from django.apps import AppConfig


class ConnlocalShimConfig(AppConfig):
    name = "connlocal_shim"
    verbose_name = "connlocal-shim"

    def ready(self):
        from django.core import checks

        from connlocal_shim.backport import install
        from connlocal_shim.checks import ALL_CHECKS

        install()
        # register()(check): Django 1.7's register() takes only tags and returns the decorator.
        for check in ALL_CHECKS:
            checks.register()(check)

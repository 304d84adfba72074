"""Django before 1.7 has no AppConfig.ready(): its app cache imports each installed app's
models module, and importing this one installs the backport. (No models are defined here.)"""
try:
    from django.apps import apps as _registry  # noqa: F401 (Django 1.7+: apps.py installs)
except ImportError:
    from connlocal_shim.backport import install

    install()

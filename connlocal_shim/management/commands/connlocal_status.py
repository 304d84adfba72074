"""``manage.py connlocal_status [--json]``: what connlocal_shim found and did on this site.

The Django and Python versions, which pieces of Django 1.4's thread-local connections are
native and which the shim backported, the backends whose DatabaseWrapper classes it rebuilt,
the captured ``connection`` references it redirected, every patch, any refusal with its reason,
and the messages of its system checks (Django 1.7+). ``--json`` prints the same as JSON.

Works on every Django from 1.2 (optparse ``option_list`` up to 1.7, ``add_arguments`` since
1.8; Django 1.10 removed ``option_list``).
"""
import json

from django.core.management.base import BaseCommand

from connlocal_shim.diagnostics import format_report, report

HELP_JSON = "print the report as JSON (for machines)"


class Command(BaseCommand):
    help = "Show what connlocal_shim found and patched in this Django (connlocal-shim)."

    if hasattr(BaseCommand, "add_arguments"):  # Django 1.8+: argparse
        def add_arguments(self, parser):
            parser.add_argument("--json", action="store_true", dest="json", default=False,
                                help=HELP_JSON)
    else:  # Django 1.2-1.7: optparse
        from optparse import make_option

        option_list = BaseCommand.option_list + (
            make_option("--json", action="store_true", dest="json", default=False,
                        help=HELP_JSON),
        )
        del make_option

    # The report must come out even when the site's checks fail (connlocal_shim.E001 among
    # them): it lists connlocal_shim's check messages itself.
    if not isinstance(getattr(BaseCommand, "requires_system_checks", False), bool):
        requires_system_checks = []  # Django 3.2+: tags to check, "__all__" by default
    elif hasattr(BaseCommand, "check"):
        requires_system_checks = False  # Django 1.7-3.1 (1.7/1.8 warn at requires_model_...)
    else:
        requires_model_validation = False  # Django 1.2-1.6

    def handle(self, *args, **options):
        load_installed_apps()
        data = report()
        if options.get("json"):
            return json.dumps(data, indent=2, sort_keys=True) + "\n"
        return format_report(data)


def load_installed_apps():
    """Before Django 1.7 nothing imports the apps' models modules (where connlocal_shim
    installs) until the app cache loads, as a site's startup does; load it here too."""
    try:
        from django.apps import apps  # noqa: F401 (Django 1.7+: django.setup() did it)
    except ImportError:
        from django.db.models.loading import get_apps

        get_apps()

#!/usr/bin/env python
"""A small site with connlocal_shim in INSTALLED_APPS, as a user's site has it: the probe runs
``manage.py connlocal_status`` (and ``check``) here, and the README shows its output.

    .tox/py27-django13/bin/python compat_matrix/demo_site/manage.py connlocal_status
"""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_settings")
    # execute_from_command_line exists in every Django from 1.2 (manage.py used
    # execute_manager up to 1.3, which 1.6 removed).
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

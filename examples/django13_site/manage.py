#!/usr/bin/env python
# What `django-admin.py startproject mysite` makes on Django 1.2/1.3 (the manage.py of 1.3.7,
# shortened), moved up beside the package as later Djangos lay it out; docs/deploying.rst.
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

#!/usr/bin/env python
"""manage.py as Django 1.3's startproject wrote it."""
from django.core.management import execute_manager

import settings

if __name__ == "__main__":
    execute_manager(settings)

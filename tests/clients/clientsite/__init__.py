"""A Django 1.3-era project (startproject's layout: manage.py, settings.py, urls.py and the apps
side by side) for the scenarios of tests/clients: a tool that patches Django beside
connlocal_shim, listed (and imported) before it or after it. settings.py reads which from the
environment."""

"""mysite/wsgi.py: the WSGI application of a Django 1.2/1.3 site, which startproject does not
write there (docs/deploying.rst). Beside settings.py; serve it from the directory above::

    gunicorn --worker-class gthread --threads 16 --bind 127.0.0.1:8000 mysite.wsgi:application
"""
import os

# Before importing anything of Django: which settings this process serves.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

# Before the first request: nothing loads the app cache in a server process on Django before
# 1.7, so "connlocal_shim" in INSTALLED_APPS alone would install nothing.
import connlocal_shim  # noqa: E402

connlocal_shim.install()  # idempotent; patches nothing on Django 1.4+

try:  # Django 1.4+
    from django.core.wsgi import get_wsgi_application
except ImportError:  # Django 1.2/1.3: the handler itself (django/core/handlers/wsgi.py)
    from django.core.handlers.wsgi import WSGIHandler as get_wsgi_application

application = get_wsgi_application()

"""The stress project's WSGI application, as README.rst tells a site to write wsgi.py: gunicorn
imports this module in each worker, where Django before 1.7 loads no app cache, so install()
is called here, before the handler is built (on Django 1.4+ it patches nothing)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stressproject.settings")

import connlocal_shim  # noqa: E402

connlocal_shim.install()

try:  # Django 1.4+ (django.setup() on 1.7+)
    from django.core.wsgi import get_wsgi_application
except ImportError:  # Django 1.2/1.3
    from django.core.handlers.wsgi import WSGIHandler as get_wsgi_application

django_application = get_wsgi_application()

from stressproject.views import stamp_requests  # noqa: E402

application = stamp_requests(django_application)

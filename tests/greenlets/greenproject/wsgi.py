"""The greenlet site's WSGI application, as docs/servers.rst tells a Django 1.2/1.3 site to write
it: install() first (Django before 1.7 loads no app cache in a server process), then the
handler. Under gunicorn -k gevent / -k eventlet the worker has monkey-patched by then; under
--preload the master imports this module before forking, and the worker patches after."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "greenproject.settings")

import connlocal_shim  # noqa: E402

connlocal_shim.install()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

application = WSGIHandler()

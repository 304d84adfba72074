"""The WSGI application gunicorn serves for figure 5, configured from the environment:

BENCH_SHIM=1 installs connlocal_shim first, as the README's wsgi.py does; BENCH_PG_PORT is the
throwaway PostgreSQL cluster's port on 127.0.0.1.
"""
import os

import bench_django

bench_django.configure(
    db="postgres", pg_port=int(os.environ["BENCH_PG_PORT"]),
    shim=os.environ.get("BENCH_SHIM") == "1",
)

try:
    from django.core.wsgi import get_wsgi_application  # Django 1.4+
except ImportError:
    from django.core.handlers.wsgi import WSGIHandler as get_wsgi_application

application = get_wsgi_application()

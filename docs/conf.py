"""Sphinx configuration of connlocal-shim's docs: ``tox -e docs`` builds them into build/docs/html
with warnings as errors and every cross-reference checked (-W -n)."""
import datetime

import django
from django.conf import settings

# The API page documents the installed package (tox installs it into the docs env); its modules
# import Django's database layer, which wants settings.
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=["connlocal_shim"],
)
django.setup()

import connlocal_shim  # noqa: E402

project = "connlocal-shim"
author = "the connlocal-shim authors"
copyright = "%d, %s" % (datetime.date.today().year, author)
version = release = connlocal_shim.__version__

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
exclude_patterns = ["_build", "notes"]
root_doc = "index"
nitpicky = True
# Names the docs mention that belong to Django or to Python and have no page here (there is no
# intersphinx: the build must not need the network).
nitpick_ignore_regex = [
    (r"py:.*", r"(django|threading|contextvars|asgiref)\..*"),
    (r"py:exc", r"(ImproperlyConfigured|ConnectionDoesNotExist|DatabaseError|TypeError)"),
]
html_theme = "alabaster"
html_theme_options = {"description": "Django 1.4's thread-local connections on 1.2/1.3; one "
                                     "routing API on Django 1.2-6.1"}
html_static_path = []

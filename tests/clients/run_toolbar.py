"""django-debug-toolbar 0.9.4 on the client site, driven by Django's test client as a developer's
browser would: one request from the main thread, then PARTIES - 1 threads and the main thread
at once (their views meet in the middle, notes/views.py), each with a Client of its own.
Prints, for each request, what its toolbar's SQL panel lists: which requests' queries (by their
markers) and how many.

Order tool-first: clientsite/panels.py (a site's SQL panel; importing it wraps
BaseDatabaseWrapper.cursor) is imported before connlocal_shim installs; shim-first: the toolbar
loads its panels at the first request, after install.
"""
import re
import threading

import sitestart

result = sitestart.start(before_install=lambda: __import__("panels"))

from django.test.client import Client  # noqa: E402

from notes.views import PARTIES  # noqa: E402

NAMES = ["main-first"] + ["concurrent-%d" % number for number in range(PARTIES)]
QUERIES = re.compile(r"(\d+) quer(?:y|ies) in ")


def sql_panel(content):
    """The SQL panel's part of a page: its queries, each with its parameters."""
    start = content.find('id="djDebugSQLPanel"')
    if start < 0:
        return ""
    end = content.find('id="djDebug', start + 1)
    return content[start:end if end > 0 else len(content)]


def browse(name, meet, requests):
    record = requests[name] = {"thread": threading.current_thread().name}
    try:
        response = Client().get("/page/", {"marker": name, "meet": "1" if meet else ""})
        content = response.content.decode("utf-8", "replace")
        record["status"] = response.status_code
        record["toolbar"] = "djDebug" in content
        panel = sql_panel(content)
        record["markers"] = sorted(
            other for other in NAMES if (other + "-a") in panel and (other + "-b") in panel)
        counts = QUERIES.findall(content)
        record["queries"] = int(counts[0]) if counts else None
    except Exception as error:
        record["error"] = "%s: %s" % (type(error).__name__, error)


requests = {}
browse(NAMES[0], False, requests)
threads = [threading.Thread(target=browse, args=(name, True, requests), name=name)
           for name in NAMES[2:]]
for thread in threads:
    thread.start()
browse(NAMES[1], True, requests)  # the main thread's request of the concurrent round
for thread in threads:
    thread.join(60)
result["requests"] = requests
result["names"] = NAMES
sitestart.report(result)

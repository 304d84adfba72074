"""features.detect() tells what the running Django has, and agrees with how it behaves."""
import json

import support

PROBE = r"""
import json, threading
import support
support.configure(installed_apps=())
support.start_django()
import django.db
from django.db import connections
from connlocal_shim.features import detect

features = detect()          # before anything is installed
seen = {}
main_wrapper = connections["default"]
main_wrapper.marker = "main"
def other_thread():
    seen["wrapper"] = connections["default"]
    seen["marker"] = getattr(main_wrapper, "marker", None)
thread = threading.Thread(target=other_thread); thread.start(); thread.join()
print(json.dumps({
    "features": features.as_dict(),
    "same_wrapper_in_two_threads": seen["wrapper"] is connections["default"],
    "wrapper_state_per_thread": seen["marker"] is None,
    "connection_is_the_default_wrapper": django.db.connection is connections["default"],
    "has_validate_thread_sharing": hasattr(connections["default"], "validate_thread_sharing"),
}))
"""


def probe():
    out, _, _ = support.run_python(PROBE)
    return json.loads(out.strip().splitlines()[-1])


def test_the_record_matches_the_behaviour_of_an_unpatched_django():
    observed = probe()
    features = observed["features"]
    assert features["problems"] == []
    # A handler shared by all threads hands the same wrapper to every thread.
    assert (features["thread_local_handler"] == "missing") == observed["same_wrapper_in_two_threads"]
    # A threading.local wrapper shows each thread its own attributes.
    assert (features["wrappers_without_local"] == "missing") == observed["wrapper_state_per_thread"]
    assert (features["connection_proxy"] == "missing") == observed[
        "connection_is_the_default_wrapper"
    ]
    assert (features["thread_sharing"] == "native") == observed["has_validate_thread_sharing"]
    assert bool(features["missing"]) == observed["same_wrapper_in_two_threads"]


def test_the_record_is_plain_data():
    from connlocal_shim.features import PIECES, detect

    record = detect().as_dict()
    assert json.loads(json.dumps(record)) == record
    for piece in PIECES:
        assert record[piece] in ("native", "missing", "unavailable")


def test_after_install_django_looks_native():
    """What install() backports is found natively by a second probe."""
    from connlocal_shim.features import detect

    features = detect()
    assert features.missing == [] and features.problems == []

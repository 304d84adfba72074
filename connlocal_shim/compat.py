"""The few Python 2/3 differences connlocal_shim needs, without six."""
import sys

PY2 = sys.version_info[0] == 2

if PY2:
    string_types = (basestring,)  # noqa: F821 (Python 2 only)
    # Python 3 cannot parse Python 2's three-argument raise, hence exec.
    exec("def reraise(exc_type, value, traceback):\n    raise exc_type, value, traceback\n")
else:
    string_types = (str,)

    def reraise(exc_type, value, traceback):
        raise value.with_traceback(traceback)

reraise.__doc__ = "Raise what ``sys.exc_info()`` returned, with its traceback."

__all__ = ["PY2", "reraise", "string_types"]

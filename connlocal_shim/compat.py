"""The few Python 2/3 differences connlocal_shim needs, without six."""
import sys

PY2 = sys.version_info[0] == 2

try:  # Python 2
    from thread import get_ident
except ImportError:  # Python 3
    from threading import get_ident

if PY2:
    string_types = (basestring,)  # noqa: F821 (Python 2 only)
else:
    string_types = (str,)

__all__ = ["PY2", "get_ident", "string_types"]

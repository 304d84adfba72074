"""Management commands of connlocal_shim (``manage.py connlocal_status``)."""

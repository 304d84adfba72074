"""manage.py connlocal_status."""

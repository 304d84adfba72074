"""Warnings and errors of connlocal_shim."""


class ConnlocalShimWarning(RuntimeWarning):
    """Something about connlocal_shim that the site's developers must look at.

    Raised as a warning (never as an error) when install refused to patch an unknown
    layout, or when uninstall found one of our patches replaced by someone else::

        import warnings
        warnings.simplefilter("error", connlocal_shim.ConnlocalShimWarning)  # in tests
    """

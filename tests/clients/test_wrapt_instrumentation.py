"""A wrapt instrumentation of ``BaseDatabaseWrapper.cursor`` (New Relic's agent's way), applied
before connlocal_shim installs or after it, sees every query: of the main thread and of other
threads, through the ORM, through ``django.db.connection`` captured at import and, where the
throwaway cluster runs, through a PostgreSQL alias."""
import os

import pytest

import support
from clientsupport import ORDERS, require, result_of, run_in_site, site_env
from support import requires_postgres

HERE = os.path.dirname(os.path.abspath(__file__))


@requires_postgres
@pytest.mark.parametrize("order", ORDERS)
def test_wrapt_instrumentation_sees_every_query(order, site_dir):
    require("wrapt", "wrapt")
    env = site_env(site_dir, "wrapt", order, postgres=True)
    finished = run_in_site(site_dir, [os.path.join(HERE, "run_wrapt.py")], env)
    result = result_of(finished)
    assert result["start_error"] is None and result["installed"], result
    assert result["errors"] == [], "queries failed: %s" % result["errors"]
    ran = [tuple(query) for query in result["ran"]]
    seen = [tuple(query) for query in result["seen"]]
    assert len(ran) == 4 * (3 if support.postgres_cluster is not None else 2)
    missed = sorted(set(ran) - set(seen))
    assert not missed, "the instrumentation (applied %s) missed %d of %d queries: %s" % (
        "before install" if order == "tool-first" else "after install", len(missed), len(ran),
        missed)
    assert sorted(seen) == sorted(ran), "seen once each, by the thread that ran it: %s" % seen

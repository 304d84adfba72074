"""route_connections, separate_connection and shared_connection on every Django (routing.py)."""
import inspect
import sys
import threading

import pytest

import servers
import support
from connlocal_shim import routing
from support import ThreadResult, in_thread

FEATURES = support.original_features()


def connections():
    from django.db import connections

    return connections


def route_connections(*args, **kwargs):
    return routing.route_connections(*args, **kwargs)


def aliases_now():
    handler = connections()
    return dict((alias, handler[alias]) for alias in ("default", "other", "memory"))


class OuterTransaction(object):
    """Open a transaction on ``alias`` (as a view would) and roll it back at the end."""

    def __init__(self, alias):
        self.alias = alias

    def __enter__(self):
        from django.db import transaction

        if hasattr(transaction, "atomic"):  # Django 1.6+
            self.atomic = transaction.atomic(using=self.alias)
            self.atomic.__enter__()
        else:  # Django 1.2-1.5
            self.atomic = None
            transaction.enter_transaction_management(using=self.alias)
            transaction.managed(True, using=self.alias)
        return self

    def __exit__(self, *exc_info):
        from django.db import transaction

        if self.atomic is not None:
            transaction.set_rollback(True, using=self.alias)
            self.atomic.__exit__(None, None, None)
        else:
            transaction.rollback(using=self.alias)
            transaction.leave_transaction_management(using=self.alias)
        return False


def test_an_alias_is_repointed_for_the_current_thread_only():
    handler = connections()
    own = aliases_now()
    inside, leave = threading.Event(), threading.Event()

    def routed():
        with route_connections(default="other") as routed_to:
            inside.set()
            leave.wait(30)
            return handler["default"] is routed_to["default"], handler["default"].alias

    worker = ThreadResult(routed)
    assert inside.wait(30)
    try:
        assert handler["default"] is own["default"], "another thread's routing leaked here"
    finally:
        leave.set()
    assert worker.result() == (True, "other")
    assert aliases_now() == own


def test_as_a_decorator_it_keeps_the_function_and_routes_each_call():
    handler = connections()

    @route_connections(default="memory")
    def view(request, answer=42):
        """A view."""
        return handler["default"].alias, request, answer

    assert view.__name__ == "view" and view.__doc__ == "A view."
    if hasattr(inspect, "signature"):
        assert str(inspect.signature(view)) == "(request, answer=42)"
    assert view("request") == ("memory", "request", 42)
    assert handler["default"].alias == "default"
    assert in_thread(view, "in a thread", answer=1) == ("memory", "in a thread", 1)


def test_blocks_nest_and_an_alias_string_names_the_threads_own_connection():
    handler = connections()
    own = aliases_now()
    with route_connections(default="other"):
        assert handler["default"] is own["other"]
        with route_connections(other="default", memory="default"):
            # 'default' names this thread's own default database, not the re-pointed alias.
            assert handler["other"] is own["default"] and handler["memory"] is own["default"]
            assert handler["default"] is own["other"]
        assert handler["other"] is own["other"] and handler["memory"] is own["memory"]
    assert aliases_now() == own


class AliasName(str):
    """A str subclass as an alias value (as a settings module's constants may be)."""


def test_the_same_alias_strings_give_one_block_and_any_other_arguments_another():
    # route_connections() keeps the blocks of alias strings; nothing else may share one.
    handler = connections()
    own = aliases_now()
    one = route_connections(default="other")
    assert route_connections(default="other") is one
    assert route_connections(default="memory") is not one
    assert route_connections(other="default") is not one
    closing = route_connections(default="other", close_connections=True)
    assert closing is not one and closing.close_connections
    assert route_connections(default="other", close_connections=True) is closing
    two = route_connections(default="other", other="default")
    assert route_connections(other="default", default="other") is two
    assert route_connections(default="other", other="default", close_connections=True) is not two
    # A wrapper keeps its own blocks (one per alias routed to it); a value that is a str only
    # by subclass gets a block of its own each time; each routes where it says.
    wrapper = own["memory"]
    assert route_connections(default=wrapper) is route_connections(default=wrapper)
    assert route_connections(other=wrapper) is not route_connections(default=wrapper)
    assert route_connections(default=own["other"]) is not route_connections(default=wrapper)
    assert route_connections(default=wrapper, close_connections=True) is not (
        route_connections(default=wrapper))
    with route_connections(default=wrapper):
        assert handler["default"] is wrapper
    assert route_connections(default=AliasName("other")) is not one
    with route_connections(default=AliasName("other")):
        assert handler["default"] is own["other"]
    with one:
        assert handler["default"] is own["other"]
    with two:
        assert handler["default"] is own["other"] and handler["other"] is own["default"]
    assert aliases_now() == own


def test_a_wrappers_block_routes_to_that_wrapper_only_and_lives_as_long_as_it():
    # Kept in the wrapper's own state: a copy of the wrapper (which carries that state) gets a
    # block routing to the copy, and the block goes when the wrapper goes.
    import copy
    import gc
    import weakref

    handler = connections()
    own = aliases_now()
    wrapper = routing.new_wrapper("memory")
    block = route_connections(default=wrapper)
    duplicate = copy.copy(wrapper)
    assert vars(duplicate) == vars(wrapper)  # the same state, the kept blocks included
    with route_connections(default=duplicate) as routed:
        assert handler["default"] is duplicate and routed["default"] is duplicate
    assert route_connections(default=duplicate) is not block
    with route_connections(default=wrapper):
        assert handler["default"] is wrapper
    assert aliases_now() == own
    gone = weakref.ref(block)
    del block, wrapper, duplicate, routed
    gc.collect()
    assert gone() is None


def test_two_aliases_can_be_swapped():
    handler = connections()
    own = aliases_now()
    with route_connections(default="other", other="default"):
        assert handler["default"] is own["other"] and handler["other"] is own["default"]
    assert aliases_now() == own


def test_an_exception_propagates_untouched_and_routing_is_restored():
    own = aliases_now()
    error = ValueError("from the view")
    with pytest.raises(ValueError) as raised:
        with route_connections(default="other", memory="other"):
            raise error
    assert raised.value is error
    assert aliases_now() == own


class CountingFactory(routing.ConnectionFactory):
    def __init__(self):
        self.created, self.disposed = [], []

    def create(self):
        wrapper = routing.new_wrapper("other")
        self.created.append(wrapper)
        return wrapper

    def dispose(self, wrapper):
        self.disposed.append(wrapper)
        routing.close_private(wrapper)


@pytest.mark.parametrize("aliases", [
    {"replica": "default"},
    {"default": "replica"},
    {"default": "other", "memory": "replica"},
])
def test_an_unknown_alias_is_refused_on_entry_and_nothing_is_repointed(aliases):
    from django.db.utils import ConnectionDoesNotExist

    own = aliases_now()
    factory = CountingFactory()
    block = route_connections(other=factory, **aliases)
    with pytest.raises(ConnectionDoesNotExist) as raised:
        block.__enter__()
    assert "'replica' is not in DATABASES" in str(raised.value)
    assert "default" in str(raised.value)
    assert aliases_now() == own
    assert factory.created == factory.disposed, "a factory's connection must not leak"


@pytest.mark.parametrize("value", [42, None, 3.5, ["default"]])
def test_a_value_of_the_wrong_type_is_refused_saying_what_is_accepted(value):
    with pytest.raises(TypeError) as raised:
        route_connections(default=value)
    message = str(raised.value)
    assert "alias string" in message and "DatabaseWrapper" in message
    assert "separate_connection" in message


def test_a_callable_that_returns_no_wrapper_is_refused_and_nothing_is_repointed():
    own = aliases_now()
    with pytest.raises(TypeError) as raised:
        with route_connections(default=lambda: "not a wrapper"):
            pass
    assert "not a DatabaseWrapper" in str(raised.value)
    assert aliases_now() == own


def test_reused_threads_never_carry_routing_from_one_task_to_the_next():
    try:
        import queue
    except ImportError:  # Python 2
        import Queue as queue
    handler = connections()
    tasks, results = queue.Queue(), []

    @route_connections(default="other")
    def routed_task():
        return handler["default"].alias

    def plain_task():
        return handler["default"].alias

    def worker():
        while True:
            task = tasks.get()
            if task is None:
                return
            try:
                results.append((task.__name__, task()))
            except Exception as error:  # reported through results
                results.append((task.__name__, repr(error)))

    pool = [threading.Thread(target=worker) for _ in range(2)]
    for thread in pool:
        thread.start()
    for index in range(40):
        tasks.put(routed_task if index % 2 else plain_task)
    for _ in pool:
        tasks.put(None)
    for thread in pool:
        thread.join(60)
    assert len(results) == 40
    for name, alias in results:
        assert alias == ("other" if name == "routed_task" else "default"), (name, alias)


# -- separate_connection ------------------------------------------------------------------------

@support.parametrize_over_databases()
def test_a_separate_connection_commits_even_if_the_surrounding_transaction_rolls_back(aliases):
    alias = aliases["master"]
    server = support.database_kind(alias) != "sqlite"
    for table in ("audit_log", "orders"):  # made afresh: other tests' audit_log differs
        support.execute("DROP TABLE IF EXISTS %s" % table, alias=alias)
        support.execute("CREATE TABLE %s (what VARCHAR(20))" % table, alias=alias)
    support.commit(alias)
    handler = connections()
    own = handler[alias]

    def write(table, what):
        support.execute("INSERT INTO %s VALUES (%%s)" % table, [what], alias=alias)

    with OuterTransaction(alias):
        if server:  # the view writes first; a server database takes both writers at once
            write("orders", "refund")
        with route_connections(**{alias: routing.separate_connection(alias)}) as routed:
            separate = routed[alias]
            assert separate is not own and handler[alias] is separate
            write("audit_log", "refund asked")
            support.commit(alias)
        assert separate.connection is None, "the separate connection closes with its block"
        assert handler[alias] is own
        if not server:  # sqlite has one writer: the view writes after the audit row
            write("orders", "refund")
        assert support.execute("SELECT COUNT(*) FROM orders", alias=alias, fetch=True)[0][0] == 1
    with routing.separate_connection(alias) as fresh:
        assert support.query(fresh, "SELECT what FROM audit_log") == [("refund asked",)]
        assert support.query(fresh, "SELECT what FROM orders") == []


def test_a_separate_connection_on_its_own_is_opened_lazily_and_closed():
    with routing.separate_connection("other") as wrapper:
        assert wrapper.connection is None
        assert wrapper is not connections()["other"] and wrapper.alias == "other"
        assert support.query(wrapper, "SELECT 5") == [(5,)]
    assert wrapper.connection is None


def test_separate_connection_refuses_a_non_string_and_an_unknown_alias():
    from django.db.utils import ConnectionDoesNotExist

    with pytest.raises(TypeError) as raised:
        routing.separate_connection(3)
    assert "separate_connection() takes an alias string, not int" in str(raised.value)
    with pytest.raises(TypeError) as raised:
        routing.shared_connection(None)
    assert "shared_connection() takes an alias string, not NoneType" in str(raised.value)
    with pytest.raises(ConnectionDoesNotExist) as raised:
        with routing.separate_connection("replica"):
            pass
    assert "'replica'" in str(raised.value)


# -- shared_connection ----------------------------------------------------------------------------

def test_a_shared_connection_serves_another_thread_through_route_connections():
    """The use that made Django 1.4 need all this: an in-memory database, made in the test
    thread, read by another thread (in Django, LiveServerTestCase's server thread)."""
    memory = connections()["memory"]
    own = type(memory)(memory.settings_dict, "memory")  # opened under the shim: shareable
    support.query(own, "CREATE TABLE served (x INTEGER)")
    support.query(own, "INSERT INTO served VALUES (11)")
    handler = connections()
    with route_connections(memory=own):
        with routing.shared_connection("memory") as shared:
            assert shared is own and shared.allow_thread_sharing

            def serve():
                with route_connections(default=shared):
                    return support.execute("SELECT x FROM served", fetch=True)

            assert [tuple(row) for row in in_thread(serve)] == [(11,)]
        assert not own.allow_thread_sharing
    assert handler["memory"] is memory
    own.connection.close()


def test_an_unshared_wrapper_of_another_thread_fails_on_first_use_naming_the_threads():
    from django.db.utils import DatabaseError

    wrapper = connections()["default"]

    def use():
        with route_connections(default=wrapper):
            support.execute("SELECT 1")

    with pytest.raises(DatabaseError) as raised:
        in_thread(use)
    assert "created in thread id %s" % support.get_ident() in str(raised.value)


# -- close_connections ------------------------------------------------------------------------------

def test_close_connections_closes_what_the_block_used():
    handler = connections()
    other = handler["other"]
    support.query(other, "SELECT 1")
    with route_connections(close_connections=True, default="other"):
        support.execute("SELECT 1")
    assert other.connection is None


def test_close_connections_leaves_a_connection_in_an_outer_transaction_open():
    handler = connections()
    other = handler["other"]
    with OuterTransaction("other"):
        support.query(other, "SELECT 1")
        with route_connections(close_connections=True, default="other"):
            support.execute("SELECT 1")
        assert other.connection is not None, "closing would have ended the outer transaction"


NOT_INSTALLED = r"""
import support
support.configure(installed_apps=())
from connlocal_shim import route_connections
from django.core.exceptions import ImproperlyConfigured
try:
    with route_connections(default="other"):
        pass
except ImproperlyConfigured as error:
    print("REFUSED " + str(error))
"""


@pytest.mark.skipif(
    FEATURES.thread_local_handler != "missing",
    reason="handler already thread-local: routing needs no install here",
)
def test_without_the_backport_routing_says_how_to_install_it():
    out, _, _ = support.run_python(NOT_INSTALLED)
    assert "REFUSED connlocal_shim: connections are shared by all threads" in out
    assert "INSTALLED_APPS" in out


# -- what a decorator routes: the whole run of generators and async callables ---------------------

def test_a_decorated_generator_function_is_routed_for_each_step_of_its_iteration():
    handler = connections()
    own = handler["default"]
    seen = []

    @route_connections(default="other")
    def stream(count):
        for index in range(count):
            seen.append(handler["default"].alias)
            yield index

    iterator = stream(3)
    assert seen == [], "creating the generator runs none of its code"
    assert next(iterator) == 0
    assert handler["default"] is own, "the consumer between steps keeps its own routing"
    assert list(iterator) == [1, 2]
    assert seen == ["other", "other", "other"]
    assert handler["default"] is own


def test_a_function_that_returns_a_generator_is_routed_where_the_generator_runs():
    handler = connections()

    @route_connections(default="memory")
    def rows():
        return (handler["default"].alias for _ in range(2))

    assert list(rows()) == ["memory", "memory"]
    assert handler["default"].alias == "default"


def test_a_generators_separate_connection_lasts_its_iteration_and_closes_at_its_end():
    handler = connections()
    made = []

    @route_connections(default=routing.separate_connection("other"))
    def stream():
        for index in range(3):
            wrapper = handler["default"]
            made.append(wrapper)
            support.query(wrapper, "SELECT 1")
            yield index

    iterator = stream()
    next(iterator)
    next(iterator)
    assert made[0] is made[1] and made[0].connection is not None, "one connection throughout"
    iterator.close()  # ended early: its connection is disposed of all the same
    assert made[0].connection is None
    assert handler["default"].alias == "default"


def test_decorating_a_class_is_refused_saying_what_to_decorate():
    class View(object):
        pass

    with pytest.raises(TypeError) as raised:
        route_connections(default="other")(View)
    assert "not classes" in str(raised.value) and "View" in str(raised.value)


# -- blocks left out of order -----------------------------------------------------------------------

def test_a_block_left_after_an_inner_one_undoes_only_its_own_routing():
    # A generator holding a route inside a separate_connection block, closed after that block
    # ended: each block leaves its own frame.
    handler = connections()
    own = handler["default"]

    def holder():
        with route_connections(default="other"):
            yield handler["default"].alias
            yield handler["default"].alias

    iterator = holder()
    with route_connections(default=routing.separate_connection("default")) as routed:
        separate = routed["default"]
        support.query(separate, "SELECT 1")
        assert next(iterator) == "other"  # the generator's block opens inside this one
        assert separate.connection is not None, "an inner block must not dispose of it"
    assert separate.connection is None, "its own block's end disposes of it"
    assert handler["default"].alias == "other", "the generator's block is still open"
    assert next(iterator) == "other"
    iterator.close()
    assert handler["default"] is own


def test_a_block_left_in_another_thread_is_refused_and_changes_nothing():
    handler = connections()
    own = handler["default"]
    block = route_connections(default="other")
    block.__enter__()
    try:
        with pytest.raises(RuntimeError) as raised:
            in_thread(block.__exit__, None, None, None)
        assert "another thread" in str(raised.value)
        assert handler["default"].alias == "other"
    finally:
        block.__exit__(None, None, None)
    assert handler["default"] is own


# -- django.db.connection as a value ----------------------------------------------------------------

def test_django_db_connection_routes_to_the_threads_current_default_wrapper():
    from django.db import connection

    handler = connections()
    with route_connections(other=connection) as routed:
        assert routed["other"] is handler["default"]
        assert handler["other"] is handler["default"]
    with route_connections(default="memory"):
        with route_connections(other=connection):
            assert handler["other"].alias == "memory", "what the default alias serves now"
    assert handler["other"].alias == "other"


def test_a_block_of_django_db_connection_made_once_follows_the_default_at_each_entry():
    # The wrappers django.db.connection stands for keep blocks of their own, and reading
    # them through it gives the current wrapper's: such a block would route to the wrapper of
    # the moment it was made, not of each entry.
    from django.db import connection

    handler = connections()
    own = aliases_now()
    kept = dict((name, route_connections(other=own[name])) for name in ("default", "memory"))
    with route_connections(default="memory"):
        block = route_connections(other=connection)  # made once, as a decorator's
        assert block is not kept["memory"]
        with block:
            assert handler["other"] is own["memory"]
    assert route_connections(other=connection) is not kept["default"]
    with block:
        assert handler["other"] is own["default"], "what the default alias serves at entry"
    with kept["memory"]:
        assert handler["other"] is own["memory"]
    assert aliases_now() == own


# -- a factory that fails to dispose of its connection -------------------------------------------

class FailingToDispose(routing.SeparateConnection):
    def dispose(self, wrapper):
        routing.SeparateConnection.dispose(self, wrapper)
        raise IOError("disk gone while closing")


class Recorded(object):
    def __init__(self):
        import logging

        self.records = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append
        self.logger = logging.getLogger("connlocal_shim")

    def __enter__(self):
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc_info):
        self.logger.removeHandler(self.handler)


def test_a_failing_dispose_leaves_the_others_disposed_and_the_blocks_exception_as_it_was():
    made = {}

    with Recorded() as records:
        with pytest.raises(KeyError) as raised:
            with route_connections(
                default=FailingToDispose("default"), other=routing.separate_connection("other")
            ) as routed:
                made.update(routed)
                for wrapper in routed.values():
                    support.query(wrapper, "SELECT 1")
                raise KeyError("the view's own error")
    assert raised.value.args == ("the view's own error",)
    assert made["other"].connection is None and made["default"].connection is None
    assert any(
        "disposing" in record.getMessage() and record.exc_info for record in records
    ), "a dispose failure must be reported, not hidden"
    assert connections()["default"].alias == "default"


def test_a_failing_dispose_is_raised_when_the_block_itself_succeeded():
    made = {}
    with pytest.raises(IOError) as raised:
        with route_connections(
            default=FailingToDispose("default"), other=routing.separate_connection("other")
        ) as routed:
            made.update(routed)
            support.query(routed["other"], "SELECT 1")
    assert "disk gone" in str(raised.value)
    assert made["other"].connection is None, "the other factory's connection is disposed of"
    assert connections()["other"].alias == "other"


# -- hashing ---------------------------------------------------------------------------------------

@pytest.mark.skipif(
    FEATURES.connection_proxy != "missing",
    reason="django.db.connection is Django's own proxy here (connlocal_shim leaves it as it is)",
)
def test_django_db_connection_hashes_as_itself_not_as_the_wrapper_it_stands_for():
    # README, "Limits worth knowing": equal to connections["default"], a hash of its own
    # (stable across threads and routing, as a dict key must be), so not "in" a set of wrappers.
    from django.db import connection

    handler = connections()
    mine = hash(connection)
    assert in_thread(hash, connection) == mine
    with route_connections(default="other"):
        assert hash(connection) == mine
    assert connection == handler["default"]
    assert connection not in set([handler["default"]])
    assert connection in set([connection])


# -- async ----------------------------------------------------------------------------------------

PER_TASK = FEATURES.async_local
requires_per_task = pytest.mark.skipif(
    not PER_TASK,
    reason="connections are thread-local only here (no asgiref Local): routing follows threads, "
    "there are no async tasks to keep apart",
)
try:
    import async_cases
except SyntaxError:  # Python 2: no async def
    async_cases = None
requires_async_def = pytest.mark.skipif(async_cases is None, reason="no async def on this Python")


@requires_async_def
@requires_per_task
def test_concurrent_tasks_routed_differently_never_see_each_others_routing():
    other, memory, plain = async_cases.run(async_cases.concurrent_tasks(route_connections))
    assert other == (("other", "other"), ("other", "other"))
    assert memory == (("memory", "memory"), ("memory", "memory"))
    assert plain == ("default", "default")
    assert connections()["default"].alias == "default"


@requires_async_def
@requires_per_task
def test_one_block_entered_by_two_tasks_with_plain_with_routes_each_until_it_leaves():
    block = route_connections(default="other")
    steps = async_cases.run(async_cases.one_block_in_two_tasks(route_connections))
    assert route_connections(default="other") is block  # the tasks did share one block
    assert steps == [
        ("A in", "other"), ("B in", "other"), ("A out", "default", None),
        ("B after A left", "other"), ("B nested", "other"), ("B still", "other"),
        ("B out", "default", None),
    ]
    assert connections()["default"].alias == "default"


@requires_async_def
def test_decorating_a_coroutine_function_keeps_it_one():
    import asyncio

    if not PER_TASK:
        pytest.skip("connections are thread-local only here (no asgiref Local): the ORM of a "
                    "coroutine runs in sync_to_async threads only with asgiref")
    view = async_cases.decorated_coroutine(route_connections)
    assert inspect.iscoroutinefunction(view) and asyncio.iscoroutinefunction(view)
    assert view.__name__ == "view" and view.__doc__ == "An async view."
    assert str(inspect.signature(view)) == "(answer=42)"
    assert async_cases.run(view(answer=7)) == ("other", 7)
    assert connections()["default"].alias == "default"


@requires_async_def
def test_a_decorated_async_generator_is_routed_for_each_step():
    if sys.version_info < (3, 6):
        pytest.skip("no async generators on this Python")
    inside, between = async_cases.run(
        async_cases.async_generator_steps(route_connections, PER_TASK)
    )
    assert inside == ["other", "other"]
    assert between == ["default", "default"]
    assert connections()["default"].alias == "default"


@requires_async_def
def test_an_object_with_an_async_call_is_routed_for_its_whole_call():
    view = async_cases.decorated_async_callable(route_connections, PER_TASK)
    assert async_cases.run(view(answer=3)) == ("memory", 3)
    assert connections()["default"].alias == "default"


def async_client():
    try:
        from django.test import AsyncClient
    except ImportError:
        pytest.skip("no async views here (django.test.AsyncClient)")
    return AsyncClient()


@requires_async_def
@requires_per_task
def test_concurrent_async_requests_routed_differently_never_see_each_others_routing():
    client = async_client()
    routes = ["other", "memory", "", "other", "memory", ""]
    seen = async_cases.run(async_cases.concurrent_requests(client, routes))
    assert seen == [route or "default" for route in routes]


@requires_async_def
@requires_per_task
def test_the_middleware_routes_concurrent_async_writes_only():
    from test_middleware import middleware_settings

    client = async_client()
    methods = ["POST", "GET", "POST", "GET", "GET", "POST"]
    with middleware_settings("MIDDLEWARE"):
        seen = async_cases.run(async_cases.concurrent_writes_and_reads(client, methods))
    assert seen == ["other" if m == "POST" else "default" for m in methods]
    assert connections()["default"].alias == "default"


@requires_async_def
@requires_per_task
def test_a_separate_connection_in_an_async_task_is_used_and_closed_outside_the_loop():
    outcome = async_cases.run(
        async_cases.separate_connection_in_a_task(route_connections, routing.separate_connection)
    )
    assert outcome == (True, "other", True)


# -- on server databases: PostgreSQL, through PgBouncer, MariaDB ---------------------------------

over_servers = support.parametrize_over_databases(kinds=("postgres", "pgbouncer", "mysql"))


def server_session(alias="default"):
    """The calling thread's connection for ``alias``, as its server knows it
    (tests/servers.py); the transaction the query may have opened ended."""
    session = servers.session(alias)
    support.commit(alias)
    return session


@over_servers
def test_routing_on_a_server_database_uses_the_threads_own_server_session(aliases):
    handler = connections()
    master, replica = aliases["master"], aliases["replica"]
    master_session = server_session(master)

    def routed():
        with route_connections(default=master, **{master: replica}):
            return (server_session(), server_session(master), server_session(replica),
                    handler["default"].alias)

    theirs, swapped, replica_session, default_alias = in_thread(routed)
    assert default_alias == master
    assert theirs != master_session, "another thread must have its own server session"
    assert swapped == replica_session and swapped != theirs
    with route_connections(default=master):
        assert server_session() == master_session
    assert handler["default"].alias == "default"


@over_servers
def test_a_shared_server_connection_serves_another_thread_in_the_same_session(aliases):
    master = aliases["master"]
    own_session = server_session(master)
    with routing.shared_connection(master) as shared:

        def serve():
            with route_connections(default=shared):
                return servers.session_of(connections()["default"])

        assert in_thread(serve) == own_session
    support.commit(master)


@over_servers
def test_close_connections_ends_the_server_session(aliases):
    replica = aliases["replica"]

    def routed_and_closed():
        with route_connections(close_connections=True, default=replica):
            session = servers.session_of(connections()["default"])
        return session, connections()[replica].connection is None

    session, closed = in_thread(routed_and_closed)
    assert closed, "the thread's own replica connection is closed on exit"
    left = servers.wait_for_sessions(replica, lambda found: session not in found)
    assert session not in left, "the server session of the closed connection must end"

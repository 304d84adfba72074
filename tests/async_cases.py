"""Async code for the routing tests (imported only where ``async def`` parses)."""
import asyncio


def run(coroutine):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def concurrent_tasks(route_connections):
    """Three tasks on one loop, interleaved: two routed differently, one not. Each reports what
    its ORM-side code (in a sync_to_async thread) sees."""
    from asgiref.sync import sync_to_async
    from django.db import connection, connections

    def seen():
        return connections["default"].alias, connection.alias

    all_entered = asyncio.Event()
    entered = []

    async def task(route):
        if route is None:
            entered.append(route)
            if len(entered) == 3:
                all_entered.set()
            await all_entered.wait()
            return await sync_to_async(seen)()
        async with route_connections(default=route):
            entered.append(route)
            if len(entered) == 3:
                all_entered.set()
            await all_entered.wait()
            first = await sync_to_async(seen)()
            await asyncio.sleep(0)
            return first, await sync_to_async(seen)()

    return await asyncio.gather(task("other"), task("memory"), task(None))


async def one_block_in_two_tasks(route_connections):
    """One block object (route_connections keeps it for its arguments), entered with a plain
    ``with`` by two tasks whose blocks overlap: A enters, B enters, A leaves, B looks, B leaves.
    Each step reports what the default alias is in that task, and the context's overlay."""
    from connlocal_shim import context
    from django.db import connections

    steps = []
    a_entered, a_left = asyncio.Event(), asyncio.Event()

    async def first():
        with route_connections(default="other"):
            steps.append(("A in", connections["default"].alias))
            a_entered.set()
            await asyncio.sleep(0)
        steps.append(("A out", connections["default"].alias, context.ROUTES.get()))
        a_left.set()

    async def second():
        await a_entered.wait()
        with route_connections(default="other"):
            steps.append(("B in", connections["default"].alias))
            await a_left.wait()
            steps.append(("B after A left", connections["default"].alias))
            with route_connections(default="other"):  # the same block, nested in itself
                steps.append(("B nested", connections["default"].alias))
            steps.append(("B still", connections["default"].alias))
        steps.append(("B out", connections["default"].alias, context.ROUTES.get()))

    await asyncio.gather(first(), second())
    return steps


def decorated_coroutine(route_connections):
    from asgiref.sync import sync_to_async
    from django.db import connections

    @route_connections(default="other")
    async def view(answer=42):
        """An async view."""
        await asyncio.sleep(0)
        return await sync_to_async(lambda: connections["default"].alias)(), answer

    return view


async def concurrent_requests(client, routes):
    # The route travels in the path: Django 3.1/3.2's AsyncClient drops GET data.
    responses = await asyncio.gather(*[client.get("/async-alias/%s" % r) for r in routes])
    return [response.content.decode("utf-8") for response in responses]


async def concurrent_writes_and_reads(client, methods):
    calls = [client.post("/async-alias/") if m == "POST" else client.get("/async-alias/")
             for m in methods]
    responses = await asyncio.gather(*calls)
    return [response.content.decode("utf-8") for response in responses]


async def async_alias(request, route=""):
    """An async view: routed to ``route`` (from the path), it waits so that requests
    interleave, then reports what its ORM-side code sees."""
    from asgiref.sync import sync_to_async
    from django.db import connections
    from django.http import HttpResponse

    from connlocal_shim import route_connections

    def seen():
        return connections["default"].alias

    if route:
        async with route_connections(default=route):
            await asyncio.sleep(0.01)
            alias = await sync_to_async(seen)()
    else:
        await asyncio.sleep(0.01)
        alias = await sync_to_async(seen)()
    return HttpResponse(alias)


async def separate_connection_in_a_task(route_connections, separate_connection):
    """A task routes 'default' to a separate connection, queries it from sync_to_async, and
    leaves: the connection must be closed, without touching the database from the loop."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    def query():
        cursor = connections["default"].cursor()
        cursor.execute("SELECT 1")
        return connections["default"]

    async with route_connections(close_connections=True,
                                 default=separate_connection("other")) as routed:
        used = await sync_to_async(query)()
        separate = routed["default"]
    return used is separate, separate.alias, separate.connection is None


async def _alias_seen(per_task):
    """What the ORM side sees as 'default' now: through sync_to_async where connections are
    per task (asgiref), in the loop's own thread otherwise."""
    from django.db import connections

    if per_task:
        from asgiref.sync import sync_to_async

        return await sync_to_async(lambda: connections["default"].alias)()
    return connections["default"].alias


async def async_generator_steps(route_connections, per_task):
    """A decorated async generator: each step routed, the consumer between steps not."""

    @route_connections(default="other")
    async def stream():
        for _ in range(2):
            yield await _alias_seen(per_task)

    between = []
    inside = []
    async for alias in stream():
        inside.append(alias)
        between.append(await _alias_seen(per_task))
    return inside, between


class AsyncView(object):
    """An object whose __call__ is a coroutine function (as class-based async views are)."""

    def __init__(self, per_task):
        self.per_task = per_task

    async def __call__(self, answer):
        await asyncio.sleep(0)
        return await _alias_seen(self.per_task), answer


def decorated_async_callable(route_connections, per_task):
    return route_connections(default="memory")(AsyncView(per_task))

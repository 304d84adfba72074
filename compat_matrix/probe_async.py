"""The async check of the probe (imported only where ``async def`` parses)."""
import asyncio


def run(coroutine):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def concurrent_tasks(route_connections):
    """Three tasks on one loop, interleaved: two routed differently, one not. Each reports what
    its ORM-side code (in a sync_to_async thread) sees, before and after a switch to the other
    tasks."""
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

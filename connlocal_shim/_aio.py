"""The async half of route_connections; imported only where ``async def`` parses.

Entering and leaving the routing itself happens in the task (the overlay is a ContextVar of the
task's context); closing connections talks to the database, which Django forbids in an event
loop (``async_unsafe``), so it runs in ``sync_to_async``.
"""
import functools
import inspect


def is_coroutine_function(func):
    return inspect.iscoroutinefunction(func)


async def aenter(self):
    return self.enter()


async def aexit(self, exc_type, exc_value, traceback):
    frame = self.leave()
    if frame.created or (self.close_connections and frame.used):
        from asgiref.sync import sync_to_async

        await sync_to_async(self.finish)(frame)
    else:
        self.finish(frame)
    return False


def route_coroutine_function(route, func):
    @functools.wraps(func)
    async def routed(*args, **kwargs):
        await aenter(route)
        try:
            return await func(*args, **kwargs)
        finally:
            await aexit(route, None, None, None)

    return routed

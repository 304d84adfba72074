"""The async half of route_connections; imported only where ``async def`` parses."""
import functools
import inspect


def is_coroutine_function(func):
    return inspect.iscoroutinefunction(func)


async def aenter(self):
    return self.enter()


async def aexit(self, exc_type, exc_value, traceback):
    self.exit()
    return False


def route_coroutine_function(route, func):
    @functools.wraps(func)
    async def routed(*args, **kwargs):
        route.enter()
        try:
            return await func(*args, **kwargs)
        finally:
            route.exit()

    return routed

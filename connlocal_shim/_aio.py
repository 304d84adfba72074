"""The async half of route_connections; imported only where ``async def`` parses.

Entering and leaving the routing itself happens in the task (the overlay is a ContextVar of the
task's context); closing connections talks to the database, which Django forbids in an event
loop (``async_unsafe``), so it runs in ``sync_to_async``.
"""
import functools
import inspect
import sys

from connlocal_shim.routing import RoutedSteps  # defined before routing imports this module


async def aenter(self):
    return self.enter()


async def aexit(self, exc_type, exc_value, traceback):
    await _finish(self, self.leave(), exc_type is not None)
    return False


async def _finish(route, frame, body_failed):
    if frame.active:
        route.suspend(frame)
    if frame.created or (route.close_connections and frame.resolved):
        from asgiref.sync import sync_to_async

        await sync_to_async(route.finish)(frame, body_failed)
    else:
        route.finish(frame, body_failed)


def _is_async_callable(func):
    """A coroutine function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(type(func), "__call__", None)
    return not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def route_async_callable(route, func):
    """``func`` routed, if it is an async generator function or an async callable; else None."""
    if getattr(inspect, "isasyncgenfunction", None) and inspect.isasyncgenfunction(func):
        @functools.wraps(func)
        def routed_async_generator(*args, **kwargs):
            return RoutedAsyncGenerator(route, func(*args, **kwargs))

        return routed_async_generator
    if _is_async_callable(func):
        return route_coroutine_function(route, func)
    return None


def route_coroutine_function(route, func):
    @functools.wraps(func)
    async def routed(*args, **kwargs):
        frame = route.open()
        try:
            result = await func(*args, **kwargs)
        except BaseException:
            await _finish(route, frame, True)
            raise
        await _finish(route, frame, False)
        return result

    return routed


def routed_result(route, result):
    """A sync function that returned a coroutine or an async generator: route its code."""
    if inspect.iscoroutine(result):
        async def routed():
            return await result

        return route_coroutine_function(route, routed)()
    if getattr(inspect, "isasyncgen", None) and inspect.isasyncgen(result):
        return RoutedAsyncGenerator(route, result)
    return result


class RoutedAsyncGenerator(RoutedSteps):
    """An async generator whose code runs with a block's routing, step by step (see
    routing.RoutedGenerator): between steps the consumer keeps its own routing."""

    def __aiter__(self):
        return self

    def __anext__(self):
        return self._step(self._generator.asend, None)

    def asend(self, value):
        return self._step(self._generator.asend, value)

    def athrow(self, *args):
        return self._step(self._generator.athrow, *args)

    async def aclose(self):
        if self._done:
            return
        self._done = True
        if self._frame is None:
            await self._generator.aclose()
            return
        self._route.point(self._frame)
        try:
            await self._generator.aclose()
        except BaseException:
            await _finish(self._route, self._frame, True)
            raise
        await _finish(self._route, self._frame, False)

    async def _step(self, method, *args):
        if self._done:
            return await method(*args)
        route = self._route
        if self._frame is None:
            self._frame = route.open()
        else:
            route.point(self._frame)
        try:
            value = await method(*args)
        except BaseException:
            self._done = True
            error = sys.exc_info()[1]
            finished = isinstance(error, (StopAsyncIteration, GeneratorExit))
            await _finish(route, self._frame, not finished)
            raise
        route.suspend(self._frame)
        return value

"""Where route_connections keeps each thread's stack of entered blocks."""
import threading

_local = threading.local()


def current_frames():
    """The current thread's list of route_connections frames, outermost first."""
    try:
        return _local.frames
    except AttributeError:
        frames = _local.frames = []
        return frames

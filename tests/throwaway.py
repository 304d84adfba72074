"""What the throwaway servers of the suite share (tests/pg_cluster.py, tests/mariadb_server.py,
tests/pgbouncer.py): finding a program, a free port of 127.0.0.1, the tail of a log, stopping
on SIGTERM, and the command line .ci/run calls (find-server, stop-leftovers DIR).

Python 2.7 and 3.x, standard library only.
"""
import os
import signal
import socket
import sys

HOST = "127.0.0.1"


def executable(directory, name):
    """``directory/name`` if it is an executable file, else None."""
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def free_port():
    """A port of 127.0.0.1 that nothing listens on now (the kernel's pick for port 0)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


def log_tail(path, lines=20, missing="(no server log)"):
    """The last ``lines`` lines of the log at ``path``; ``missing`` if it cannot be read."""
    try:
        with open(path) as handle:
            return "".join(handle.readlines()[-lines:])
    except (IOError, OSError, TypeError):  # TypeError: no path yet (a server never started)
        return missing


def stop_on_sigterm(stop):
    """A SIGTERM (tox stopping an env) would end the process without atexit: call ``stop()``
    first, then hand the signal to the handler that was there (pg_cluster's, which stops its
    cluster), or die of it as before. Not where SIGTERM is ignored."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None):
        return

    def stop_then_terminate(signum, frame):
        stop()
        if callable(previous):
            previous(signum, frame)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_then_terminate)


def main(script, find, stop_leftovers, argv=None):
    """The command line of a server helper ``script``:

        python tests/SCRIPT find-server          exit 1 if ``find()`` finds nothing
        python tests/SCRIPT stop-leftovers DIR   list and remove what ``stop_leftovers`` finds
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["find-server"]:
        sys.exit(find() is None)
    if argv[:1] == ["stop-leftovers"] and len(argv) == 2:
        for path in stop_leftovers(argv[1]):
            print(path)
        sys.exit(0)
    sys.exit("usage: %s find-server | stop-leftovers DIR" % script)

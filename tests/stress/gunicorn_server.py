"""gunicorn as a site runs it: its gthread worker (a pool of threads per worker process), or its
gevent / eventlet worker (a greenlet per connection, at most ``connections`` at once), started
by the test as a subprocess on a free port of 127.0.0.1 and stopped by it.

    with GunicornServer("stressproject.wsgi:application", env, log, threads=16) as server:
        server.url    # http://127.0.0.1:PORT
    GunicornServer(app, env, log, worker_class="gevent", connections=16, preload=True)
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pg_cluster

HERE = os.path.dirname(os.path.abspath(__file__))
START_ATTEMPTS = 3
# The gunicorn script of this interpreter's environment, without relying on PATH or on
# `python -m gunicorn` (which gunicorn 19 lacks).
RUN_GUNICORN = "from gunicorn.app.wsgiapp import run; run()"


def gunicorn_version():
    import gunicorn

    return gunicorn.__version__


class GunicornError(Exception):
    pass


def _own_session_ended_with_parent():
    """preexec_fn of gunicorn's master: a session of its own (stop() ends its whole group), and
    SIGTERM when the test process dies, however it dies (Linux's PR_SET_PDEATHSIG): a killed
    pytest leaves no server behind. gunicorn stops its workers on SIGTERM."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: stop() and atexit must do
        pass


PR_SET_PDEATHSIG = 1


class GunicornServer(object):
    def __init__(self, app, env, log_path, workers=1, threads=16, ready_timeout=90,
                 worker_class="gthread", connections=None, preload=False, chdir=HERE,
                 graceful_timeout=60):
        self.app = app
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.worker_class = worker_class
        self.connections = connections if connections is not None else threads
        self.preload = preload  # --preload: the master imports the app before forking
        self.chdir = chdir
        self.graceful_timeout = graceful_timeout  # for the workers to finish, once stopped
        self.ready_timeout = ready_timeout
        self.process = None
        self.url = None

    def command(self, port):
        if self.worker_class == "gthread":
            concurrency = ["--threads", str(self.threads)]
        else:  # gevent, eventlet: one greenlet per client connection
            concurrency = ["--worker-connections", str(self.connections)]
        return [
            sys.executable, "-c", RUN_GUNICORN,
            "--bind", "%s:%d" % (pg_cluster.HOST, port),
            "--worker-class", self.worker_class,
            "--workers", str(self.workers),
        ] + concurrency + (["--preload"] if self.preload else []) + [
            "--chdir", self.chdir,
            # A request may wait for the PostgreSQL server restarting: far below this.
            "--timeout", "120",
            "--graceful-timeout", str(self.graceful_timeout),
            "--log-level", "warning",
            "--error-logfile", "-",
            self.app,
        ]

    def start(self):
        for attempt in range(1, START_ATTEMPTS + 1):
            port = pg_cluster.free_port()  # the kernel's pick: another process may take it first
            log = open(self.log_path, "ab")
            try:
                self.process = subprocess.Popen(
                    self.command(port), stdout=log, stderr=subprocess.STDOUT, env=self.env,
                    cwd=self.chdir, preexec_fn=_own_session_ended_with_parent,
                )
            finally:
                log.close()
            self.url = "http://%s:%d" % (pg_cluster.HOST, port)
            if self._wait_until_ready():
                return self
            self.stop()
            if attempt == START_ATTEMPTS:
                raise GunicornError(
                    "gunicorn did not answer on %s within %ss (exit status %s); its log %s:\n%s"
                    % (self.url, self.ready_timeout, self.process.returncode, self.log_path,
                       self.log_tail())
                )
        return self

    def _wait_until_ready(self):
        import loadclient

        deadline = time.time() + self.ready_timeout
        pause = threading.Event()
        while time.time() < deadline:
            if self.process.poll() is not None:
                return False  # exited: the port was taken, or the app failed to load
            status = loadclient.request(self.url, "GET", "/ping/", timeout=5).status
            if status == 200:
                return True
            pause.wait(0.1)
        return False

    def stop(self, timeout=90):
        """SIGTERM (graceful: the workers finish their requests and exit), then SIGKILL to the
        group it started if it is still there after ``timeout`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        pause = threading.Event()
        while process.poll() is None and time.time() < deadline:
            pause.wait(0.1)
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
            process.wait()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False

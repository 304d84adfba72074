"""PgBouncer in transaction pooling mode in front of a throwaway PostgreSQL cluster (issue 13).

    bouncer = PgBouncer(find_pgbouncer(), cluster)            # cluster: a started pg_cluster
    bouncer.start({"bouncer_master": "bouncer_master"})       # pooled name -> the cluster's
    # ... connect to 127.0.0.1:bouncer.port as user "postgres", no password (trust)
    bouncer.admin("SHOW POOLS")                               # the admin console, as rows
    bouncer.stop()

Each process has its own PgBouncer, with its own ini, user list, log and pid file in a temporary
directory (under CONNLOCAL_SHIM_POSTGRES_TMPDIR, beside the clusters, so that .ci/run finds one
left behind), on its own free port of 127.0.0.1, run in the foreground as a child of this
process: as the `postgres` OS user when we are root (PgBouncer refuses root too). start()
registers stop() with atexit and on SIGTERM; stop() may be called any number of times.

Transaction pooling: a client holds a server connection only for the length of a transaction
and gets whichever is free for the next one. What that means for Django is in
docs/databases.rst, "PgBouncer".
"""
import atexit
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pg_cluster
import throwaway

INSTALL_HINT = "apt-get install pgbouncer"
HOST = pg_cluster.HOST
USER = pg_cluster.SUPERUSER
DIRECTORY_PREFIX = "connlocal-shim-pgbouncer-"
EXTRA_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin")
# Enough server connections per pool for the tests' 8 threads at once, each in a transaction,
# plus the test's own; fewer than the stress project's 16 threads, which then share them.
POOL_SIZE = 12
# A writing request of the stress project holds two connections to master at once (its
# transaction's and separate_connection's): a pool smaller than twice the threads can have
# every server connection held by a transaction waiting for a second one (a deadlock that
# ends with query_wait_timeout). Master's pool gets that many (support.start_pgbouncer).
STRESS_THREADS = 16
MAX_CLIENTS = 400
SETTINGS = (
    ("pool_mode", "transaction"),
    ("auth_type", "trust"),
    ("max_client_conn", str(MAX_CLIENTS)),
    ("default_pool_size", str(POOL_SIZE)),
    ("reserve_pool_size", "0"),
    # A client waits at most this long for a free server connection, then gets an error.
    ("query_wait_timeout", "60"),
    ("server_login_retry", "1"),
    # Server connections PgBouncer keeps idle are closed after this, as a site's would be.
    ("server_idle_timeout", "600"),
    ("log_connections", "0"),
    ("log_disconnections", "0"),
    ("stats_period", "10"),
    ("admin_users", USER),
    ("stats_users", USER),
)
PORT_TAKEN = re.compile(r"Address already in use|bind\(\) failed|could not bind")
START_ATTEMPTS = 3
START_TIMEOUT = 30


class PgBouncerError(Exception):
    """PgBouncer could not be started; the message says why and what to do."""


def find_pgbouncer(path=None):
    """The path of the pgbouncer program on PATH or in /usr/sbin; None if there is none."""
    entries = (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
    for directory in [entry for entry in entries if entry] + list(EXTRA_DIRECTORIES):
        candidate = os.path.join(directory, "pgbouncer")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _account():
    """(uid, gid) of the postgres OS user when we are root (pg_cluster's), else None."""
    try:
        return pg_cluster._server_account()
    except pg_cluster.ClusterError as error:
        raise PgBouncerError(str(error).replace("PostgreSQL", "PgBouncer"))


class PgBouncer(object):
    """One PgBouncer; see the module docstring."""

    def __init__(self, program, cluster):
        self.program = program
        self.cluster = cluster
        self.directory = None
        self.port = None
        self.version = None
        self.databases = {}
        self.pool_sizes = {}
        self._process = None

    @property
    def ini_file(self):
        return os.path.join(self.directory, "pgbouncer.ini")

    @property
    def log_file(self):
        return os.path.join(self.directory, "pgbouncer.log")

    @property
    def pid_file(self):
        return os.path.join(self.directory, "pgbouncer.pid")

    def start(self, databases, pool_sizes=None):
        """Start PgBouncer with ``databases`` ({name clients use: the cluster's database}) in
        transaction pooling mode, each pooling POOL_SIZE server connections or what
        ``pool_sizes`` ({name: size}) says; returns self, or stops and raises PgBouncerError."""
        if self.directory is not None:
            raise PgBouncerError("this PgBouncer is already started, in %s" % self.directory)
        if self.cluster is None or self.cluster.port is None:
            raise PgBouncerError("start the PostgreSQL cluster before PgBouncer")
        account = _account()
        atexit.register(self.stop)
        throwaway.stop_on_sigterm(self.stop)
        try:
            self.directory = tempfile.mkdtemp(
                prefix=DIRECTORY_PREFIX, dir=os.environ.get("CONNLOCAL_SHIM_POSTGRES_TMPDIR"))
            self.databases = dict(databases)
            self.pool_sizes = dict(pool_sizes or {})
            with open(os.path.join(self.directory, "userlist.txt"), "w") as handle:
                handle.write('"%s" ""\n' % USER)  # trust: the user must still be listed
            if account is not None:
                for name in ("", "userlist.txt"):
                    os.chown(os.path.join(self.directory, name), *account)
            for attempt in range(1, START_ATTEMPTS + 1):
                self.port = throwaway.free_port()
                self._write_ini()
                if self._run(account):
                    break
                if attempt == START_ATTEMPTS or not PORT_TAKEN.search(self.log_tail()):
                    raise PgBouncerError("pgbouncer exited with status %s\nits log %s:\n%s" % (
                        self._process.returncode, self.log_file, self.log_tail()))
            self.version = self.admin("SHOW VERSION")[0][0]
        except (IOError, OSError) as error:
            self.stop()
            raise PgBouncerError("could not set up PgBouncer: %s" % error)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_ini(self):
        lines = ["; connlocal-shim tests (tests/pgbouncer.py)", "[databases]"]
        for name, target in sorted(self.databases.items()):
            lines.append("%s = host=%s port=%d dbname=%s pool_size=%d" % (
                name, HOST, self.cluster.port, target, self.pool_sizes.get(name, POOL_SIZE)))
        # Any other database of the cluster, by its own name (a test's extra database).
        lines.append("* = host=%s port=%d" % (HOST, self.cluster.port))
        lines += [
            "[pgbouncer]",
            "listen_addr = %s" % HOST,
            "listen_port = %d" % self.port,
            "unix_socket_dir =",
            "auth_file = %s" % os.path.join(self.directory, "userlist.txt"),
            "logfile = %s" % self.log_file,
        ]
        lines += ["%s = %s" % setting for setting in SETTINGS]
        with open(self.ini_file, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _run(self, account):
        """Start pgbouncer in the foreground; True once it accepts connections, False if it
        exited."""

        def run_as_server_account():
            os.setsid()  # its own process group: a Ctrl-C of the tests is ours to pass on
            if account is not None:
                os.setgroups([])
                os.setgid(account[1])
                os.setuid(account[0])

        devnull = open(os.devnull, "wb")  # it logs to its logfile
        try:
            self._process = subprocess.Popen(
                [self.program, self.ini_file], stdout=devnull, stderr=subprocess.STDOUT,
                cwd=self.directory, preexec_fn=run_as_server_account, close_fds=True,
            )
        except OSError as error:
            raise PgBouncerError("could not run %s: %s" % (self.program, error))
        finally:
            devnull.close()
        with open(self.pid_file, "w") as handle:
            handle.write("%d\n" % self._process.pid)
        deadline = time.time() + START_TIMEOUT
        pause = threading.Event()
        while time.time() < deadline:
            if self._process.poll() is not None:
                return False
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.connect((HOST, self.port))
                return True
            except socket.error:
                pause.wait(0.02)
            finally:
                probe.close()
        raise PgBouncerError("pgbouncer did not listen on %s:%d within %ss\nits log:\n%s" % (
            HOST, self.port, START_TIMEOUT, self.log_tail()))

    def connect(self, database, **options):
        """A psycopg2 connection through PgBouncer to ``database`` (a pooled name)."""
        import psycopg2

        return psycopg2.connect(host=HOST, port=self.port, user=USER, dbname=database,
                                connect_timeout=10, **options)

    def admin(self, command):
        """Rows of an admin console command (SHOW POOLS, SHOW CLIENTS...), as dicts by column
        name, on a connection opened for it."""
        connection = self.connect("pgbouncer")
        try:
            connection.autocommit = True  # the console takes no BEGIN
            cursor = connection.cursor()
            cursor.execute(command)
            if cursor.description is None:
                return []
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        finally:
            connection.close()
        if command.strip().upper() == "SHOW VERSION":
            return rows
        return [dict(zip(names, row)) for row in rows]

    def pools(self):
        """{database: SHOW POOLS row} of the pools of user USER."""
        return dict((row["database"], row) for row in self.admin("SHOW POOLS")
                    if row["user"] == USER)

    def clients(self, database):
        """The (address, port) of each client connection to ``database`` now, the console's
        own left out."""
        return sorted((row["addr"], row["port"]) for row in self.admin("SHOW CLIENTS")
                      if row["database"] == database)

    def stop(self):
        """Stop PgBouncer (SIGINT: it closes every connection at once) and remove its
        directory."""
        directory, self.directory = self.directory, None
        if directory is None:
            return
        try:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                deadline = time.time() + 10
                pause = threading.Event()
                while process.poll() is None and time.time() < deadline:
                    pause.wait(0.02)
                if process.poll() is None:
                    process.kill()
                    process.wait()
            elif process is None:  # one this object did not start (stop_leftovers)
                try:
                    with open(os.path.join(directory, "pgbouncer.pid")) as handle:
                        os.kill(int(handle.read().strip()), signal.SIGKILL)
                except (IOError, OSError, ValueError):
                    pass
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def log_tail(self, lines=20):
        return throwaway.log_tail(self.log_file, lines, missing="(no log)")


def stop_leftovers(parent):
    """Stop and remove every PgBouncer directory start() left under ``parent``; return their
    paths (for .ci/run)."""
    found = sorted(glob.glob(os.path.join(parent, DIRECTORY_PREFIX + "*")))
    for directory in found:
        bouncer = PgBouncer(find_pgbouncer(), None)
        bouncer.directory = directory
        bouncer.stop()
    return found


if __name__ == "__main__":
    throwaway.main("pgbouncer.py", find_pgbouncer, stop_leftovers)

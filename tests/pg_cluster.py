"""A throwaway PostgreSQL cluster for one test process (issue 5).

    cluster = PostgresCluster(find_server_bin())
    cluster.start(("master", "replica", "audit"))    # initdb, pg_ctl start, CREATE DATABASE
    # ... connect to 127.0.0.1:cluster.port as user "postgres", no password (trust)
    cluster.stop()                                    # pg_ctl stop, directory removed

Each process has its own cluster, in its own temporary directory and on its own free port of
127.0.0.1 (`tox -p 2` runs two envs at once). The unix socket lives in that directory too; fsync
is off and shared_buffers small: the data lives for one session. start() registers stop() with
atexit and on SIGTERM, and stops what it began when it fails half-way; stop() may be called any
number of times. PostgreSQL refuses to run as root: as root, the server runs as the `postgres`
OS user, which then owns the directory.
"""
import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile

import throwaway

INSTALL_HINT = "apt-get install postgresql"
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
HOST = throwaway.HOST
# Durability is worth nothing here and costs seconds per session.
SERVER_SETTINGS = (
    ("listen_addresses", "'%s'" % HOST),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "'16MB'"),
)
# The postmaster's log line when another process took the port between our probe and its bind.
PORT_TAKEN = re.compile(r"could not bind|Address already in use")
START_ATTEMPTS = 3


class ClusterError(Exception):
    """The cluster could not be started; the message says why and what to do."""


def _version_key(directory):
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6): the newest sorts last."""
    version = os.path.basename(os.path.dirname(directory))
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_server_bin(path=None):
    """The directory holding ``initdb`` and ``pg_ctl``: the first PATH entry with both, else the
    newest of Debian's /usr/lib/postgresql/*/bin (not on PATH there); None if there is none."""
    entries = (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
    candidates = [entry for entry in entries if entry]
    candidates += sorted(glob.glob(DEBIAN_BIN_GLOB), key=_version_key, reverse=True)
    for directory in candidates:
        if throwaway.executable(directory, "initdb") and throwaway.executable(directory, "pg_ctl"):
            return directory
    return None


free_port = throwaway.free_port


def _server_account():
    """(uid, gid) of the OS user to run the server as: the `postgres` user when we are root,
    None (ourselves) otherwise."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ClusterError(
            "running as root, which PostgreSQL refuses, and there is no %r OS user to run the "
            "server as (%s creates it)" % (SUPERUSER, INSTALL_HINT)
        )
    return entry.pw_uid, entry.pw_gid


def _quit_postmaster(pid_file):
    """What pg_ctl stop -m immediate does, where pg_ctl could not: SIGQUIT to the postmaster,
    whose pid is the first line of postmaster.pid. Nothing if it is gone already."""
    try:
        with open(pid_file) as handle:
            os.kill(int(handle.readline()), signal.SIGQUIT)
    except (IOError, OSError, ValueError):
        pass


class PostgresCluster(object):
    """One throwaway cluster; see the module docstring."""

    def __init__(self, bin_directory):
        self.bin_directory = bin_directory
        self.directory = None
        self.port = None
        self.version = None
        self._account = None

    @property
    def data_directory(self):
        return os.path.join(self.directory, "data")

    @property
    def log_file(self):
        return os.path.join(self.directory, "server.log")

    def start(self, databases=()):
        """initdb, start the server and create ``databases``; returns self. On failure, stops
        and removes what it made and raises ClusterError."""
        if self.directory is not None:
            raise ClusterError("this cluster is already started, in %s" % self.directory)
        self._account = _server_account()
        atexit.register(self.stop)
        self._stop_on_sigterm()
        with self._stopped_on_failure("the cluster's directory"):
            socket_directory = self._make_directory()
            self._run(
                "initdb", "--pgdata", self.data_directory, "--auth=trust",
                "--username", SUPERUSER, "--encoding=UTF8", "--locale=C", "--no-sync",
            )
            settings = list(SERVER_SETTINGS)
            settings.append(("unix_socket_directories", "'%s'" % socket_directory))
            with open(os.path.join(self.data_directory, "postgresql.conf"), "a") as conf:
                conf.write("\n# connlocal-shim tests (tests/pg_cluster.py)\n")
                conf.writelines("%s = %s\n" % setting for setting in settings)
            self._start_server()
            self.version = self._psql("SHOW server_version").strip()
            for name in databases:
                self._psql('CREATE DATABASE "%s"' % name)
        return self

    @contextlib.contextmanager
    def _stopped_on_failure(self, what):
        """Stop this cluster (removing what it made) if the block raises; an I/O error becomes
        a ClusterError saying it could not set up ``what``."""
        try:
            yield
        except (IOError, OSError) as error:
            self.stop()
            raise ClusterError("could not set up %s: %s" % (what, error))
        except BaseException:
            self.stop()
            raise

    def _make_directory(self):
        """The cluster's temporary directory (where .ci/run's clean-up looks) and its socket
        directory, owned by the server's account; returns the socket directory."""
        self.directory = tempfile.mkdtemp(
            prefix="connlocal-shim-pg-", dir=os.environ.get("CONNLOCAL_SHIM_POSTGRES_TMPDIR")
        )
        socket_directory = os.path.join(self.directory, "socket")
        os.mkdir(socket_directory)
        if self._account is not None:
            for path in (self.directory, socket_directory):
                os.chown(path, *self._account)
        return socket_directory

    def start_standby(self):
        """A second cluster made with ``pg_basebackup -R`` from this one and started as its
        hot standby: a separate, read-only server that receives this one's changes
        asynchronously by streaming replication. Returns it (stop() it like any cluster)."""
        if self.directory is None:
            raise ClusterError("start the primary before its standby")
        standby = PostgresCluster(self.bin_directory)
        standby._account = self._account
        atexit.register(standby.stop)
        with standby._stopped_on_failure("the standby's directory"):
            socket_directory = standby._make_directory()
            standby._run(
                "pg_basebackup", "--pgdata", standby.data_directory, "--host", HOST,
                "--port", str(self.port), "--username", SUPERUSER, "--write-recovery-conf",
                "--wal-method=stream", "--checkpoint=fast", "--no-sync",
            )
            with open(os.path.join(standby.data_directory, "postgresql.conf"), "a") as conf:
                conf.write("\n# connlocal-shim tests: the standby (tests/pg_cluster.py)\n")
                conf.write("unix_socket_directories = '%s'\nhot_standby = on\n" % socket_directory)
            standby._start_server()
            standby.version = standby._psql("SHOW server_version").strip()
        return standby

    def _start_server(self):
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl", "start", "--pgdata", self.data_directory, "--log", self.log_file,
                    "--wait", "--timeout", "60", "-o", "-p %d" % self.port,
                )
                return
            except ClusterError as error:
                if attempt == START_ATTEMPTS or not PORT_TAKEN.search(self._log_tail()):
                    raise ClusterError(
                        "%s\nserver log %s:\n%s" % (error, self.log_file, self._log_tail())
                    )

    def halt(self, mode="smart"):
        """Shut the server down and keep its directory (resume() starts it again on the same
        port). Smart, the default: new connections are refused at once ("the database system
        is shutting down"), the sessions open go on until they end."""
        self._run("pg_ctl", "stop", "--pgdata", self.data_directory, "--mode", mode, "--wait",
                  "--timeout", "60")

    def resume(self):
        """Start a halted server again, on its port."""
        self._run("pg_ctl", "start", "--pgdata", self.data_directory, "--log", self.log_file,
                  "--wait", "--timeout", "60", "-o", "-p %d" % self.port)

    def stop(self):
        """Stop the server (immediate shutdown: nothing is kept) and remove the directory."""
        directory, self.directory = self.directory, None
        if directory is None:
            return
        pid_file = os.path.join(directory, "data", "postmaster.pid")
        try:
            if os.path.exists(pid_file):
                try:
                    self._run("pg_ctl", "stop", "--pgdata", os.path.join(directory, "data"),
                              "--mode", "immediate", "--wait", cwd=directory)
                except ClusterError:
                    _quit_postmaster(pid_file)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _stop_on_sigterm(self):
        """A SIGTERM (tox stopping an env) would end the process without atexit: stop the
        cluster first, then die of the signal as before. Only where nobody handles SIGTERM."""
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return

        def stop_then_terminate(signum, frame):
            self.stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop_then_terminate)

    def _psql(self, sql):
        return self._run(
            "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
            "--set", "ON_ERROR_STOP=1", "--host", HOST, "--port", str(self.port),
            "--username", SUPERUSER, "--dbname", "postgres", "--command", sql,
        )

    def _tool(self, name):
        """A program of this installation: next to initdb, or where initdb really lives (PATH
        may hold symlinks to a few of them), or on PATH."""
        directories = os.environ.get("PATH", "").split(os.pathsep)
        if self.bin_directory is not None:
            initdb = os.path.realpath(os.path.join(self.bin_directory, "initdb"))
            directories[:0] = [self.bin_directory, os.path.dirname(initdb)]
        for directory in directories:
            found = directory and throwaway.executable(directory, name)
            if found:
                return found
        raise ClusterError(
            "no %s next to %s/initdb nor on PATH (%s)" % (name, self.bin_directory, INSTALL_HINT)
        )

    def _run(self, name, *args, **kwargs):
        """Run a PostgreSQL program as the server's OS user; return its output or raise
        ClusterError with it."""
        command = [self._tool(name)] + list(args)
        # PG* variables (PGDATA, PGPORT, PGHOST...) must not redirect the tools.
        env = dict((key, value) for key, value in os.environ.items() if not key.startswith("PG"))
        account = self._account

        def run_as_server_account():
            if account is not None:
                os.setgroups([])
                os.setgid(account[1])
                os.setuid(account[0])

        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                # The server's user must be able to read its working directory.
                cwd=kwargs.get("cwd", self.directory), preexec_fn=run_as_server_account,
            )
            output = process.communicate()[0].decode("utf-8", "replace")
        except OSError as error:
            raise ClusterError("could not run %s: %s" % (" ".join(command), error))
        if process.returncode != 0:
            raise ClusterError(
                "%s exited with status %s:\n%s" % (" ".join(command), process.returncode, output)
            )
        return output

    def _log_tail(self, lines=20):
        return throwaway.log_tail(self.log_file, lines)


def stop_leftovers(parent):
    """Stop and remove every cluster directory start() left under ``parent`` (a process killed
    before its atexit ran); return their paths. For .ci/run, which gives each run's clusters
    one parent (CONNLOCAL_SHIM_POSTGRES_TMPDIR)."""
    found = sorted(glob.glob(os.path.join(parent, "connlocal-shim-pg-*")))
    for directory in found:
        cluster = PostgresCluster(find_server_bin())
        cluster.directory, cluster._account = directory, _server_account()
        cluster.stop()
    return found


if __name__ == "__main__":
    throwaway.main("pg_cluster.py", find_server_bin, stop_leftovers)

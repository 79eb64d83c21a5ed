"""The parts of streams.brokers that need no broker: configuration, the jar cache, failures."""

from __future__ import annotations

import os
import re
import socket
import stat
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from streams.brokers import (
    KAFKA_POM,
    LocalBroker,
    default_cache_dir,
    fetch_apache_kafka,
    free_port,
    kafka_version,
    log4j2_config,
    new_cluster_id,
    server_properties,
    wait_until_ready,
)
from streams.exceptions import BrokerError

POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <properties>{properties}</properties>
</project>
"""

# Stands in for mvn: logs each run, then does what the script body says.
FAKE_MVN = """#!/bin/sh
echo run >> "{runs}"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}" ;; esac
done
{body}
"""


def write_pom(path: Path, version: str = "9.9.9", extra: str = "") -> Path:
    path.write_text(POM.format(properties=f"<kafka.version>{version}</kafka.version>{extra}"))
    return path


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake mvn on PATH that copies one jar; returns the file counting its runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runs = tmp_path / "mvn-runs"
    body = 'mkdir -p "$out" && echo jar > "$out/kafka_2.13-9.9.9.jar"'
    write_script(bin_dir / "mvn", FAKE_MVN.format(runs=runs, body=body))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return runs


def run_count(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_the_cache_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYGRID_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"

    monkeypatch.delenv("CITYGRID_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "citygrid"


def test_a_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_cluster_ids_look_like_kafkas_and_never_start_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id) for cluster_id in ids)


def test_the_kafka_version_is_read_from_the_pom(tmp_path: Path) -> None:
    assert kafka_version(write_pom(tmp_path / "pom.xml", "9.9.9")) == "9.9.9"
    assert re.fullmatch(r"\d+\.\d+\.\d+", kafka_version(KAFKA_POM))


def test_a_pom_without_a_kafka_version_is_an_error(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(POM.format(properties=""))
    with pytest.raises(BrokerError, match=r"kafka\.version"):
        kafka_version(pom)


def test_server_properties_describe_a_one_node_kraft_broker_on_loopback(tmp_path: Path) -> None:
    text = server_properties(port=19092, controller_port=19093, data_dir=tmp_path / "data")
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )

    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "true"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_log4j2_config_writes_to_the_given_file(tmp_path: Path) -> None:
    log_file = tmp_path / 'odd "name" & co.log'
    root = ElementTree.fromstring(log4j2_config(log_file))  # noqa: S314 - our own output
    files = root.findall("./Appenders/File")
    assert [f.get("fileName") for f in files] == [str(log_file)]


def test_jars_are_fetched_once_and_again_when_the_pom_changes(
    tmp_path: Path, fake_mvn: Path
) -> None:
    pom = write_pom(tmp_path / "pom.xml")
    cache = tmp_path / "cache"

    libs = fetch_apache_kafka(cache, pom=pom)
    assert libs == cache / "kafka-9.9.9" / "libs"
    assert [p.name for p in libs.glob("*.jar")] == ["kafka_2.13-9.9.9.jar"]
    assert fetch_apache_kafka(cache, pom=pom) == libs
    assert run_count(fake_mvn) == 1

    write_pom(pom, extra="<log4j.version>2.99</log4j.version>")
    assert fetch_apache_kafka(cache, pom=pom) == libs
    assert run_count(fake_mvn) == 2

    write_pom(pom, version="10.0.0")
    assert fetch_apache_kafka(cache, pom=pom) == cache / "kafka-10.0.0" / "libs"
    assert run_count(fake_mvn) == 3


def test_a_failing_mvn_reports_its_last_lines_and_leaves_no_half_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    body = 'mkdir -p "$out"; echo "[ERROR] Could not resolve kafka_2.13:9.9.9"; exit 1'
    write_script(bin_dir / "mvn", FAKE_MVN.format(runs=tmp_path / "runs", body=body))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"

    with pytest.raises(BrokerError, match=r"exit code 1(.|\n)*Could not resolve kafka_2.13"):
        fetch_apache_kafka(cache, pom=write_pom(tmp_path / "pom.xml"))
    assert sorted(p.name for p in (cache / "kafka-9.9.9").iterdir()) == [".lock"]


def test_without_mvn_fetching_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="mvn"):
        fetch_apache_kafka(tmp_path / "cache", pom=write_pom(tmp_path / "pom.xml"))


def test_waiting_for_a_broker_that_is_not_there_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError, match="no Kafka broker ready"):
        wait_until_ready(f"127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - started < 3


def test_a_bootstrap_address_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="not host:port"):
        wait_until_ready("localhost", timeout=0.5)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="tansu, apache"):
        LocalBroker("kafka")  # type: ignore[arg-type]


def test_stop_and_kill_before_start_do_nothing() -> None:
    local = LocalBroker("tansu")
    local.stop()
    local.kill()
    assert not local.running
    assert local.exit_reason() is None


def test_apache_without_java_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match="java not found"):
        LocalBroker("apache", workdir=tmp_path / "work").start()


def test_a_broker_that_exits_early_is_reported_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "#!/bin/sh\necho 'error: bad storage url' >&2\nexit 3\n"
    monkeypatch.setenv("CALF_TANSU_BIN", str(write_script(tmp_path / "tansu", script)))

    with pytest.raises(BrokerError, match=r"exited with code 3(.|\n)*bad storage url"):
        LocalBroker("tansu", workdir=tmp_path / "work").start()


def test_a_broker_that_never_answers_is_killed_after_the_ready_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    script = f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 60\n"
    monkeypatch.setenv("CALF_TANSU_BIN", str(write_script(tmp_path / "tansu", script)))
    local = LocalBroker("tansu", workdir=tmp_path / "work", ready_timeout=1.0)

    with pytest.raises(BrokerError, match="within 1s"):
        local.start()

    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not local.running

"""``citygrid registry load`` puts one record per road on the registry topic, keyed by road_id, and
``citygrid registry delete`` writes the road's tombstone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from schemas.codec import decode_road
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.settings import Settings
from streams.topics import create_topics
from tests.harness import REPO, consume, run


def _citygrid(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CITYGRID_BROKER_URL": settings.broker_url,
        "CITYGRID_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_load_publishes_every_road_and_delete_writes_a_tombstone(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = Settings.from_env(
        {}, broker_url=f"kafka://{kafka_bootstrap}", topic_prefix=f"{unique_name}.", partitions=2
    )
    run(create_topics(settings))
    topic = f"{unique_name}.city.registry.roads"
    roads = {road.road_id: road for road in load_registry_file(DEMO_REGISTRY)}

    loaded = _citygrid(settings, "registry", "load")
    assert loaded.returncode == 0, loaded.stderr
    assert f"published {len(roads)} roads of 7 communities" in loaded.stdout
    assert topic in loaded.stdout

    records = run(consume(kafka_bootstrap, topic, expect=len(roads)))
    assert sorted(r.key.decode() for r in records) == sorted(roads)
    for record in records:
        assert decode_road(record.value) == roads[record.key.decode()]

    deleted = _citygrid(settings, "registry", "delete", "yulong-st")
    assert deleted.returncode == 0, deleted.stderr

    records = run(consume(kafka_bootstrap, topic, expect=len(roads) + 1))
    assert len(records) == len(roads) + 1
    last = max((r for r in records if r.key == b"yulong-st"), key=lambda r: r.offset)
    assert last.value is None


def test_a_bad_registry_file_publishes_nothing(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {}, broker_url=f"kafka://{kafka_bootstrap}", topic_prefix=f"{unique_name}.", partitions=2
    )
    run(create_topics(settings))
    bad = tmp_path / "bad.json"
    bad.write_text('[{"road_id": "a-st", "name": "A St", "community": "c", "segments": []}]')

    result = _citygrid(settings, "registry", "load", str(bad))

    assert result.returncode == 1
    assert "road 0 ('a-st'): segments" in result.stderr
    assert not run(
        consume(kafka_bootstrap, f"{unique_name}.city.registry.roads", expect=1, within=2)
    )

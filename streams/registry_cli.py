"""``citygrid registry``: publish a road registry file to ``city.registry.roads``, or delete one
road."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from streams.exceptions import CitygridError
from streams.registry import (
    DEMO_REGISTRY,
    REGISTRY_TOPIC,
    delete_road,
    load_registry_file,
    publish_roads,
)
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["registry"]


@click.group(name="registry")
def registry() -> None:
    """Publish the road registry (路长制): which community each road belongs to, who its chief is
    and where its segments run. Workers place every event with it and dispatch to road chiefs.

    The broker and topic prefix come from CITYGRID_BROKER_URL and CITYGRID_TOPIC_PREFIX.
    """


@registry.command(short_help="Publish every road of a registry file.")
@click.argument(
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEMO_REGISTRY,
    required=False,
)
def load(file: Path) -> None:
    """Check FILE (a JSON array of roads, as the contract puts them on city.registry.roads) and
    publish every road, keyed by its road_id. Roads already on the topic are replaced; roads not
    in FILE are left as they are ("registry delete" removes one).

    FILE defaults to the demo registry of the Jiulong sub-district.
    """
    try:
        settings = Settings.from_env()
        roads = load_registry_file(file)
        published = asyncio.run(publish_roads(settings, roads))
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    communities = len({road.community for road in roads})
    click.echo(
        f"published {published} roads of {communities} communities from {file} "
        f"to {topic_name(settings, REGISTRY_TOPIC)} on {settings.bootstrap_servers}"
    )


@registry.command(short_help="Delete a road (write its tombstone).")
@click.argument("road_id")
def delete(road_id: str) -> None:
    """Delete road ROAD_ID: write a tombstone (a null value) under its key. Workers forget the
    road; its new reports then resolve to the nearest other road or to their grid cell."""
    try:
        settings = Settings.from_env()
        asyncio.run(delete_road(settings, road_id))
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"deleted {road_id}: tombstone written to {topic_name(settings, REGISTRY_TOPIC)} "
        f"on {settings.bootstrap_servers}"
    )

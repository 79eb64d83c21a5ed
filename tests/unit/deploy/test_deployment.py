"""The deployment files (Dockerfile, deploy/compose, deploy/k8s) agree with the code they run: the
settings, the commands, the topic catalogue, the web port and pages, and the Prometheus rules.

Nothing here builds or starts a container: the files are parsed and cross-checked.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import click
import dockerfile
import kubernetes_validate
import pytest
import yaml
from faust.cli.faust import cli as faust_cli

from streams.cli import simulate, topics
from streams.registry import DEMO_REGISTRY
from streams.registry_cli import registry
from streams.settings import Settings
from streams.topics import CATALOGUE

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S_DIR = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules" / "citygrid.rules.yml"
SHARED_PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"

DEFAULTS = Settings()
VARIABLES = {variable for variable, _default, _doc in Settings.documented()}

KUBERNETES_VERSION = "1.30"
"""The Kubernetes API the core manifests are validated against (Strimzi 0.49 needs 1.27+)."""
CORE_KINDS = {"ConfigMap", "Service", "StatefulSet", "Deployment", "Job"}
"""Kinds kubernetes-validate has schemas for; CRDs (Strimzi, Prometheus Operator) it has not."""

CITYGRID_COMMANDS = {("worker",), ("topics", "create"), ("registry", "load"), ("simulate",)}
"""What the deployment runs: a worker and the three one-shot tools."""
_CLI = click.Group(
    "citygrid",
    commands={
        "worker": faust_cli.commands["worker"],
        "topics": topics,
        "registry": registry,
        "simulate": simulate,
    },
)

_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


# --- loading --------------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(
        path
        for directory in (COMPOSE_DIR, K8S_DIR)
        for pattern in ("*.yaml", "*.yml")
        for path in directory.rglob(pattern)
    )


@cache
def _documents(path: Path) -> tuple[Any, ...]:
    with path.open(encoding="utf-8") as stream:
        return tuple(doc for doc in yaml.safe_load_all(stream) if doc is not None)


@cache
def _compose() -> dict[str, Any]:
    (document,) = _documents(COMPOSE_FILE)
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _k8s_resources() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S_DIR.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _documents(path)
    ]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _k8s_resources() if doc["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    (resource,) = _k8s(kind)
    return resource


@cache
def _dockerfile() -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(DOCKERFILE))


def _final_stage() -> list[dockerfile.Command]:
    commands = list(_dockerfile())
    last_from = max(i for i, command in enumerate(commands) if command.cmd == "FROM")
    return commands[last_from:]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for command in _final_stage():
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def _cli_path(argv: list[str]) -> tuple[str, ...]:
    """The command ``argv`` names, after click parsed it against the real command line."""
    command: click.Command = _CLI
    path: list[str] = []
    args = list(argv)
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path) or 'citygrid'} needs a subcommand"
        name, args = args[0], args[1:]
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"citygrid has no command {' '.join([*path, name])!r}"
        command, path = sub, [*path, name]
    try:
        command.make_context(" ".join(path), args)
    except click.UsageError as exc:
        pytest.fail(f"citygrid {' '.join(argv)}: {exc}")
    return tuple(path)


# --- every file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_deployment_yaml_file_parses(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path} holds no YAML document"
    if path.parent == K8S_DIR and path.name != "kustomization.yaml":
        for doc in documents:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
            assert doc["metadata"].get("name"), doc


def _images() -> Iterator[tuple[str, str]]:
    """(where, image) of every image the deployment files name."""
    for command in _dockerfile():
        if command.cmd == "FROM":
            yield "Dockerfile", command.value[0]
    for name, service in _services().items():
        if "image" in service:
            yield f"compose service {name}", service["image"]
    for resource in _k8s_resources():
        spec = resource.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            yield f"{resource['kind']}/{resource['metadata']['name']}", container["image"]


def test_every_image_is_pinned_to_a_version() -> None:
    images = list(_images())
    assert len(images) > 5
    stages = {c.value[2].lower() for c in _dockerfile() if c.cmd == "FROM" and len(c.value) > 2}
    for where, image in images:
        if image.lower() in stages:
            continue
        if "@sha256:" in image:
            continue
        tag = image.rpartition("/")[2].partition(":")[2]
        assert tag, f"{where}: {image} has no tag (that is :latest)"
        assert tag != "latest", f"{where}: {image} is not pinned"
        assert "$" not in image, f"{where}: {image} depends on a variable"
        assert re.search(r"\d", tag), f"{where}: {image}'s tag {tag!r} names no version"


def test_kubernetes_core_manifests_validate_against_the_api_schema() -> None:
    core = [doc for doc in _k8s_resources() if doc["kind"] in CORE_KINDS]
    assert {doc["kind"] for doc in core} >= {"ConfigMap", "Service", "StatefulSet"}
    for doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _documents(K8S_DIR / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


# --- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_runs_as_a_fixed_non_root_user() -> None:
    assert sum(1 for c in _dockerfile() if c.cmd == "FROM") >= 2
    users = [c.value[0] for c in _final_stage() if c.cmd == "USER"]
    assert users, "the runtime stage runs as root"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    assert user not in ("0", "root")


def test_dockerfile_exposes_the_web_port_and_probes_health() -> None:
    exposed = [
        int(port.split("/")[0]) for c in _final_stage() if c.cmd == "EXPOSE" for port in c.value
    ]
    assert exposed == [DEFAULTS.web_port]
    assert _dockerfile_env()["CITYGRID_WEB_PORT"] == str(DEFAULTS.web_port)
    (healthcheck,) = [c for c in _final_stage() if c.cmd == "HEALTHCHECK"]
    assert "/health" in " ".join(healthcheck.value)


def test_dockerfile_entrypoint_is_the_console_script_and_runs_a_worker() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    (entrypoint,) = [c for c in _final_stage() if c.cmd == "ENTRYPOINT"]
    assert entrypoint.json, "exec form, so signals reach citygrid, not a shell"
    assert list(entrypoint.value) == ["citygrid"]
    assert "citygrid" in scripts
    (cmd,) = [c for c in _final_stage() if c.cmd == "CMD"]
    assert _cli_path(list(cmd.value)) == ("worker",)


def test_dockerfile_settings_are_real_and_reach_the_network() -> None:
    env = {k: v for k, v in _dockerfile_env().items() if k.startswith("CITYGRID_")}
    assert set(env) <= VARIABLES
    settings = Settings.from_env(env)
    # The default web host is loopback: probes, Prometheus and the other containers need all.
    assert settings.web_host == "0.0.0.0"  # noqa: S104 - binding every interface is the point
    assert str(settings.data_dir).startswith("/var/lib/")


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.removeprefix("!").removeprefix("**/")
        if any(
            fnmatch.fnmatch(p, bare) or fnmatch.fnmatch(p.split("/")[-1], bare) for p in prefixes
        ):
            ignored = not negate
    return ignored


def test_dockerfile_copies_files_that_exist_and_are_in_the_build_context() -> None:
    patterns = _dockerignore_patterns()
    sources = [
        source
        for c in _dockerfile()
        if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from") for f in c.flags)
        for source in c.value[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: .dockerignore leaves it out"
    for must_ignore in (".venv", ".git", "var", ".pytest_cache", "streams/__pycache__"):
        assert _ignored(must_ignore, patterns), f"{must_ignore} goes into the build context"


def test_image_holds_the_demo_registry_where_the_installed_package_looks() -> None:
    # DEMO_REGISTRY is found next to the package (streams/../deploy/registry); installed from a
    # wheel, that is site-packages/deploy, which the image links to /app/deploy.
    assert DEMO_REGISTRY.relative_to(ROOT) == Path("deploy/registry/jiulong.json")
    copies = {c.value[0]: c.value[-1] for c in _final_stage() if c.cmd == "COPY" and not c.flags}
    assert copies.get("deploy/registry") == "/app/deploy/registry"
    links = " ".join(" ".join(c.value) for c in _final_stage() if c.cmd == "RUN")
    assert re.search(r"ln -s /app/deploy \S+/site-packages/deploy", links)


# --- compose --------------------------------------------------------------------------------------


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as the container sees it: strings."""
    return {str(k): str(v) for k, v in service.get("environment", {}).items()}


def _citygrid_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services().items() if "build" in s}


def _kafka_services() -> dict[str, dict[str, Any]]:
    return {
        name: s for name, s in _services().items() if s.get("image", "").startswith("apache/kafka:")
    }


def _workers() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in _citygrid_services().items()
        if _cli_path(s["command"]) == ("worker",)
    }


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path (relative to the compose file) to container path, for bind mounts."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts[volume["source"]] = volume["target"]
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[source] = target
    return mounts


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path to named volume."""
    named: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and not volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            named[target] = source
    return named


def test_compose_paths_exist_relative_to_the_compose_file() -> None:
    referenced = []
    for name, service in _services().items():
        build = service.get("build")
        if build is not None:
            context = COMPOSE_DIR / (build if isinstance(build, str) else build["context"])
            referenced.append((name, context))
            if isinstance(build, dict) and "dockerfile" in build:
                referenced.append((name, context / build["dockerfile"]))
        referenced += [(name, COMPOSE_DIR / source) for source in _bind_mounts(service)]
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            referenced.append((name, COMPOSE_DIR / path))
    assert len(referenced) > 5
    for name, path in referenced:
        assert path.resolve().exists(), f"service {name}: {path} does not exist"
    for name, service in _services().items():
        for volume in _named_volumes(service).values():
            assert volume in _compose()["volumes"], f"service {name}: volume {volume} undeclared"


def test_compose_runs_only_real_citygrid_commands() -> None:
    ran = {_cli_path(s["command"]) for s in _citygrid_services().values()}
    assert ran == CITYGRID_COMMANDS


def test_compose_citygrid_services_share_one_image_built_from_the_repository() -> None:
    services = _citygrid_services()
    assert len({s["image"] for s in services.values()}) == 1
    for name, service in services.items():
        context = (COMPOSE_DIR / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile", name


def test_compose_citygrid_settings_are_real_settings_with_valid_values() -> None:
    for name, service in _citygrid_services().items():
        env = _env(service)
        unknown = {k for k in env if k.startswith("CITYGRID_")} - VARIABLES
        assert not unknown, f"service {name}: not citygrid settings: {sorted(unknown)}"
        Settings.from_env(env)


def test_compose_citygrid_services_agree_on_brokers_partitions_and_replication() -> None:
    brokers = {f"kafka://{s.get('hostname', name)}:9092" for name, s in _kafka_services().items()}
    assert len(brokers) == 3
    settings = [Settings.from_env(_env(s)) for s in _citygrid_services().values()]
    for s in settings:
        assert {url.strip() for url in s.broker_url.split(",")} == brokers
        assert s.replication_factor == 3
        assert s.partitions == 12
    assert len({(s.app_id, s.topic_prefix) for s in settings}) == 1


def test_compose_workers_keep_state_on_their_own_volume_and_serve_on_the_web_port() -> None:
    workers = _workers()
    assert len(workers) == 2
    volumes = set()
    for name, worker in workers.items():
        settings = Settings.from_env(_env(worker))
        assert settings.store == "rocksdb://", name
        # The image creates the data dir owned by its user; a volume elsewhere would be root's.
        assert str(settings.data_dir) == _dockerfile_env()["CITYGRID_DATA_DIR"], name
        volume = _named_volumes(worker).get(str(settings.data_dir))
        assert volume is not None, f"{name}: no volume at CITYGRID_DATA_DIR {settings.data_dir}"
        volumes.add(volume)
        assert settings.web_host == "0.0.0.0", name  # noqa: S104 - reachable by Prometheus
        assert settings.web_port == DEFAULTS.web_port, name
        published = [str(p).rsplit(":", 1)[-1] for p in worker.get("ports", [])]
        assert published == [str(DEFAULTS.web_port)], name
    assert len(volumes) == len(workers), "two workers share one RocksDB directory"


def test_compose_starts_citygrid_after_kafka_and_the_topics() -> None:
    services = _services()
    topics_service = next(
        s for s in _citygrid_services().values() if _cli_path(s["command"]) == ("topics", "create")
    )
    assert topics_service["restart"] == "no"
    assert _depends_on(topics_service) == dict.fromkeys(_kafka_services(), "service_healthy")
    for name, service in _citygrid_services().items():
        if service is topics_service:
            continue
        conditions = _depends_on(service)
        assert set(conditions.values()) == {"service_completed_successfully"}, name
        assert all(_cli_path(services[d]["command"])[0] != "worker" for d in conditions), name
    simulator = next(
        s for s in _citygrid_services().values() if _cli_path(s["command"]) == ("simulate",)
    )
    assert simulator["profiles"] == ["simulator"]


def test_compose_kafka_is_a_three_node_kraft_quorum_with_durable_defaults() -> None:
    nodes = _kafka_services()
    assert len(nodes) == 3
    envs = [_env(s) for s in nodes.values()]
    assert sorted(env["KAFKA_NODE_ID"] for env in envs) == ["1", "2", "3"]
    voters = {
        f"{env['KAFKA_NODE_ID']}@{s.get('hostname', n)}:9093"
        for (n, s), env in zip(nodes.items(), envs, strict=True)
    }
    for env in envs:
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert len({env["CLUSTER_ID"] for env in envs}) == 1
    for name, node in nodes.items():
        assert "kafka" in " ".join(node["healthcheck"]["test"]), name
        assert "/var/lib/kafka/data" in _named_volumes(node), name


def _job_name(config: dict[str, Any]) -> str:
    (job,) = config["scrape_configs"]
    name: str = job["job_name"]
    return name


def test_compose_prometheus_scrapes_every_worker_with_the_shared_rules_and_job() -> None:
    prometheus = next(s for s in _services().values() if s["image"].startswith("prom/prometheus:"))
    mounts = _bind_mounts(prometheus)
    config_source = next(
        src for src, dst in mounts.items() if dst == "/etc/prometheus/prometheus.yml"
    )
    (config,) = _documents((COMPOSE_DIR / config_source).resolve())
    (job,) = config["scrape_configs"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:{DEFAULTS.web_port}" for name in _workers()}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (shared,) = _documents(SHARED_PROMETHEUS)
    assert _job_name(config) == _job_name(shared), "the alerts select on the shared job name"
    container = {dst: src for src, dst in mounts.items()}
    for rule_file in config["rule_files"]:
        in_container = PurePosixPath("/etc/prometheus") / rule_file
        source_dir = container[str(in_container.parent)]
        assert (COMPOSE_DIR / source_dir / in_container.name).resolve().is_file(), rule_file


def test_compose_grafana_finds_prometheus_and_the_dashboards() -> None:
    grafana = next(s for s in _services().values() if s["image"].startswith("grafana/grafana:"))
    mounts = {(COMPOSE_DIR / src).resolve(): dst for src, dst in _bind_mounts(grafana).items()}
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    assert mounts[provisioning] == "/etc/grafana/provisioning"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in _documents(path)[0]["providers"]
    ]
    assert providers
    for provider in providers:
        assert provider["options"]["path"] == mounts[ROOT / "deploy" / "grafana" / "dashboards"]
    prometheus_name, prometheus = next(
        (n, s) for n, s in _services().items() if s["image"].startswith("prom/prometheus:")
    )
    (published,) = prometheus["ports"]
    container_port = str(published).rsplit(":", 1)[-1]
    sources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in _documents(path)[0]["datasources"]
        if source["type"] == "prometheus"
    ]
    assert sources
    for source in sources:
        assert source["url"] == f"http://{prometheus_name}:{container_port}"


# --- Kubernetes: Strimzi --------------------------------------------------------------------------


def test_kafka_topics_are_the_topic_catalogue() -> None:
    kafka = _one("Kafka")
    declared = {}
    for topic in _k8s("KafkaTopic"):
        name = topic["metadata"]["name"]
        assert _DNS_1123_LABEL.fullmatch(name), f"{name} is not a DNS-1123 label"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        declared[topic["spec"]["topicName"]] = topic["spec"]
    assert set(declared) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        config = {k: str(v) for k, v in declared[spec.name]["config"].items()}
        assert config == spec.config, spec.name


def test_kafka_topics_match_the_workers_partitions_and_replication() -> None:
    settings = Settings.from_env(_one("ConfigMap")["data"])
    for topic in _k8s("KafkaTopic"):
        assert topic["spec"]["partitions"] == settings.partitions
        assert topic["spec"]["replicas"] == settings.replication_factor == 3


def test_strimzi_cluster_is_three_dual_role_nodes_with_durable_defaults() -> None:
    kafka = _one("Kafka")
    pool = _one("KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["type"] == "persistent-claim"
    annotations = kafka["metadata"]["annotations"]
    assert annotations["strimzi.io/kraft"] == "enabled"
    assert annotations["strimzi.io/node-pools"] == "enabled"
    assert str(kafka["spec"]["kafka"]["version"]).startswith("4.1.")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert "topicOperator" in kafka["spec"]["entityOperator"], "KafkaTopics need the operator"


def test_workers_connect_to_the_strimzi_bootstrap_service() -> None:
    settings = Settings.from_env(_one("ConfigMap")["data"])
    listeners = {
        listener["port"]: listener for listener in _one("Kafka")["spec"]["kafka"]["listeners"]
    }
    bootstrap = f"{_one('Kafka')['metadata']['name']}-kafka-bootstrap"
    for server in settings.bootstrap_servers.split(","):
        host, port = server.split(":")
        assert host == bootstrap
        assert listeners[int(port)]["tls"] == settings.security_protocol.endswith("SSL")


# --- Kubernetes: the workers ----------------------------------------------------------------------


def _worker_pod() -> dict[str, Any]:
    template: dict[str, Any] = _one("StatefulSet")["spec"]["template"]
    return template


def _worker_container() -> dict[str, Any]:
    (container,) = _worker_pod()["spec"]["containers"]
    return container


def _container_port(name_or_number: str | int) -> int:
    for port in _worker_container()["ports"]:
        if name_or_number in (port["name"], port["containerPort"]):
            number: int = port["containerPort"]
            return number
    raise AssertionError(f"the worker container has no port {name_or_number!r}")


def test_configmap_holds_only_real_settings_with_valid_values() -> None:
    data = _one("ConfigMap")["data"]
    assert set(data) <= VARIABLES
    settings = Settings.from_env(data)
    assert settings.web_host == "0.0.0.0"  # noqa: S104 - probes and Prometheus use the pod IP
    assert settings.web_port == DEFAULTS.web_port


def test_statefulset_runs_the_worker_from_the_configmap_and_the_compose_image() -> None:
    statefulset = _one("StatefulSet")
    container = _worker_container()
    assert statefulset["spec"]["replicas"] == 2
    assert _cli_path(container["args"]) == ("worker",)
    assert "command" not in container, "the image's ENTRYPOINT is citygrid"
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == _one("ConfigMap")["metadata"]["name"]
    images = {s["image"] for s in _citygrid_services().values()}
    assert images == {container["image"]}


def test_statefulset_probes_the_pages_the_worker_serves_on_its_web_port() -> None:
    import agents  # noqa: F401, PLC0415 - registers the agents, as the citygrid command does
    from streams.app import app  # noqa: PLC0415 - builds the Faust app

    container = _worker_container()
    assert _container_port("metrics") == DEFAULTS.web_port
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/ready"
    assert liveness["path"] == "/health"
    for probe in (readiness, liveness):
        assert _container_port(probe["port"]) == DEFAULTS.web_port
        assert probe["path"] in app.web.views
    assert "/metrics" in app.web.views


def test_statefulset_keeps_rocksdb_on_its_claim_at_the_data_dir() -> None:
    statefulset = _one("StatefulSet")
    settings = Settings.from_env(_one("ConfigMap")["data"])
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in _worker_container()["volumeMounts"]}
    assert mounts.get(str(settings.data_dir)) in claims
    assert str(settings.data_dir) == _dockerfile_env()["CITYGRID_DATA_DIR"]
    assert settings.store == "rocksdb://"


def test_statefulset_runs_as_the_dockerfile_user() -> None:
    (user,) = [c.value[0] for c in _final_stage() if c.cmd == "USER"]
    uid, _, gid = user.partition(":")
    context = _worker_pod()["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == int(uid)
    if gid:
        assert context["runAsGroup"] == context["fsGroup"] == int(gid)
    assert _worker_container()["securityContext"]["allowPrivilegeEscalation"] is False


def test_statefulset_resources_are_bounded() -> None:
    resources = _worker_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_headless_service_governs_the_statefulset_and_names_the_metrics_port() -> None:
    service = _one("Service")
    statefulset = _one("StatefulSet")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    labels = _worker_pod()["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert _container_port(port["targetPort"]) == port["port"] == DEFAULTS.web_port


def test_podmonitor_scrapes_the_workers_metrics_as_the_shared_job() -> None:
    monitor = _one("PodMonitor")
    labels = _worker_pod()["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert _container_port(endpoint["port"]) == DEFAULTS.web_port
    assert endpoint["path"] == "/metrics"
    (shared,) = _documents(SHARED_PROMETHEUS)
    assert labels[monitor["spec"]["jobLabel"]] == _job_name(shared)


# --- Kubernetes: the rules ------------------------------------------------------------------------


def _rule_generator() -> ModuleType:
    # deploy/ is not a package: load the script by path, as it is run.
    path = K8S_DIR / "generate_prometheusrule.py"
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_holds_the_rule_groups_of_the_rules_file() -> None:
    (rules,) = _documents(RULES_FILE)
    assert _one("PrometheusRule")["spec"]["groups"] == rules["groups"]


def test_prometheusrule_is_what_its_generator_writes() -> None:
    generator = _rule_generator()
    expected = generator.render(RULES_FILE.read_text(encoding="utf-8"))
    committed = (K8S_DIR / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == expected, "run `python deploy/k8s/generate_prometheusrule.py`"

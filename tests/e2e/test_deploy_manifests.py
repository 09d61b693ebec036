"""deploy/: the image, the compose file and the Kubernetes manifests agree with each other and with the CLI.

No container runs here. Every `loglake` command line the deployments start is parsed by the real argument
parser (the StatefulSet's shell script is executed, with a stand-in `loglake` that prints its arguments);
ports, addresses, process ids, volumes, images and the pipeline file are then checked across the files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath, PurePosixPath
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from loglake.pipelines.cli import build_parser
from loglake.pipelines.spec import load_pipeline
from tests.conftest import EXAMPLES, REPO

DEPLOY = REPO / "deploy"
KAFKA_PIPELINE = EXAMPLES / "kafka" / "pipeline.yaml"
NAMESPACE = "logs"
"""The namespace the manifests are pretended to be applied in (they name none themselves)."""
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
"""Oldest and newest Kubernetes the manifests are validated against."""
MEMORY_LIMIT = 512 * 2**20
"""The project targets 300 MB per process; a pod may ask for headroom up to this."""


@dataclass(frozen=True)
class Process:
    """One `loglake run` process as a deployment starts it."""

    name: str
    """Its compose service or pod."""
    where: str
    """Its compose service or pod, for messages."""
    host: str
    """The name the other processes of its cluster reach it by."""
    args: argparse.Namespace
    env: dict[str, str]
    """Its environment: the image's, then the deployment's."""
    mounts: dict[str, str]
    """Container path → what is mounted there: a bind-mount source, or the name of the volume (for a pod's
    own claim, the claim Kubernetes makes for it, `<template>-<pod>`), so equal names mean shared storage."""


# --- reading the files ------------------------------------------------------------------------------------


def parse_cli(argv: list[str], env: Mapping[str, str], where: str) -> argparse.Namespace:
    """`loglake ARGV` parsed by the real CLI parser, in the container's environment (it reads defaults from it)."""
    with mock.patch.dict(os.environ, env, clear=True):
        parser = build_parser()
    try:
        args: argparse.Namespace = parser.parse_args(argv)
    except SystemExit:
        raise AssertionError(f"{where}: the CLI rejects `loglake {' '.join(argv)}` (its message is in the captured stderr)") from None
    return args


@dataclass(frozen=True)
class Image:
    """What deploy/Dockerfile builds, as far as the other files depend on it."""

    base: str
    user: str
    entrypoint: list[str]
    cmd: list[str]
    exposed: set[int]
    env: dict[str, str]
    copied: list[str]
    run: str


@cache
def image() -> Image:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    everywhere: Sequence[Mapping[str, object]] = parser.structure
    final_stage = everywhere[max(i for i, step in enumerate(everywhere) if step["instruction"] == "FROM") :]

    def values(name: str, stage: Sequence[Mapping[str, object]] = final_stage) -> list[str]:
        """The values of the stage's `name` instructions, with build ARGs expanded."""
        return [re.sub(r"\$\{?(\w+)\}?", lambda m: parser.args.get(m[1], m[0]), str(i["value"])) for i in stage if i["instruction"] == name]

    copy_sources = [source for value in values("COPY", everywhere) if "--from" not in value for source in value.split()[:-1]]
    return Image(
        base=values("FROM")[0].split()[0],
        user=values("USER")[-1],
        entrypoint=yaml.safe_load(values("ENTRYPOINT")[-1]),
        cmd=yaml.safe_load(values("CMD")[-1]),
        exposed={int(port.split("/")[0]) for value in values("EXPOSE") for port in value.split()},
        env=dict(parser.envs),
        copied=copy_sources,
        run="\n".join(values("RUN")),
    )


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return document


def compose_mounts(service: dict[str, Any]) -> dict[str, str]:
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def compose_processes() -> list[Process]:
    """The services that run `loglake run` (the image's entrypoint with a `run …` command)."""
    processes = []
    for name, service in compose()["services"].items():
        if service.get("image") == loglake_image() and "entrypoint" not in service and service["command"][0] == "run":
            assert all(isinstance(part, str) for part in service["command"]), f"compose service {name}: command items must be strings"
            env = {**image().env, **{key: str(value) for key, value in service.get("environment", {}).items()}}
            args = parse_cli(service["command"], env, f"compose service {name}")
            processes.append(Process(name, f"compose service {name}", service.get("hostname", name), args, env, compose_mounts(service)))
    return processes


@cache
def k8s_documents() -> tuple[dict[str, Any], ...]:
    files = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert files, "deploy/k8s holds no manifests"
    return tuple(document for file in files for document in yaml.safe_load_all(file.read_text(encoding="utf-8")) if document)


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in k8s_documents() if doc["kind"] == kind}


def only(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert len(objects) == 1, f"expected one, found {list(objects)}"
    return next(iter(objects.values()))


def statefulset() -> dict[str, Any]:
    return only(k8s_objects("StatefulSet"))


def loglake_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = statefulset()["spec"]["template"]["spec"]["containers"]
    return only({container["name"]: container for container in containers})


def container_env(container: dict[str, Any], pod: str) -> dict[str, str]:
    """The container's environment as Kubernetes would set it in pod `pod` of namespace NAMESPACE."""
    fields = {"metadata.name": pod, "metadata.namespace": NAMESPACE}
    env = {**image().env, "HOSTNAME": pod}
    for item in container.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def k8s_processes(tmp_path: Path) -> list[Process]:
    """Each pod's `loglake` argv, got by running the container's command with a `loglake` that prints it."""
    stub = tmp_path / "loglake"
    stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n", encoding="utf-8")
    stub.chmod(0o755)
    sts, container = statefulset(), loglake_container()
    per_pod = {template["metadata"]["name"] for template in sts["spec"]["volumeClaimTemplates"]}
    processes = []
    for ordinal in range(sts["spec"]["replicas"]):
        pod = f"{sts['metadata']['name']}-{ordinal}"
        mounts = {m["mountPath"]: f"{m['name']}-{pod}" if m["name"] in per_pod else m["name"] for m in container["volumeMounts"]}
        env = container_env(container, pod)
        done = subprocess.run(
            [*container["command"], *container.get("args", [])],
            env={**env, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, f"pod {pod}: the container command failed: {done.stderr}"
        (line,) = done.stdout.splitlines()
        host = f"{pod}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local"
        processes.append(Process(pod, f"pod {pod}", host, parse_cli(json.loads(line), env, f"pod {pod}"), env, mounts))
    return processes


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def loglake_image() -> str:
    return f"loglake:{pyproject()['project']['version']}"


def under(path: str | PurePath, folder: str) -> bool:
    return PurePosixPath(path).is_relative_to(folder)


def mount_of(process: Process, path: str | PurePath) -> str:
    """The volume `path` is on in `process`'s container (the deepest mount containing it)."""
    holders = [target for target in process.mounts if under(path, target)]
    assert holders, f"{process.where}: {path} is on no volume (lost when the container goes)"
    return process.mounts[max(holders, key=len)]


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("512Mi", "1", "500m") as a number."""
    suffixes = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi|)", str(text))
    assert match, f"not a Kubernetes quantity: {text!r}"
    return float(match[1]) * suffixes[match[2]]


def cluster_port(cluster: list[Process]) -> int:
    """The port in --addresses (all the same: it is the image's)."""
    ports = {int(address.rpartition(":")[2]) for address in cluster[0].args.addresses}
    assert len(ports) == 1, f"--addresses mixes ports {ports}"
    return ports.pop()


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> list[Process]:
    """The StatefulSet's processes."""
    return k8s_processes(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(params=["compose", "k8s"])
def cluster(request: pytest.FixtureRequest, pods: list[Process]) -> list[Process]:
    """The processes of one deployment's loglake cluster."""
    processes = compose_processes() if request.param == "compose" else pods
    assert len(processes) >= 2, f"{request.param}: a cluster needs two processes or more"
    return processes


# --- the image --------------------------------------------------------------------------------------------


def test_the_image_runs_the_loglake_command_as_a_non_root_user() -> None:
    built = image()
    assert built.base == "python:3.11-slim"
    assert built.entrypoint == ["loglake"] and "loglake" in pyproject()["project"]["scripts"]
    assert built.cmd == ["--help"] and "--help" in build_parser()._option_string_actions
    assert built.user.isdigit() and int(built.user) != 0, f"USER {built.user}: Kubernetes' runAsNonRoot needs a numeric, non-zero uid"
    assert f'--uid "{built.user}"' in built.run or f"--uid {built.user}" in built.run


def test_the_image_build_copies_every_package_the_wheel_needs() -> None:
    project = pyproject()
    needed = {"pyproject.toml", project["project"]["readme"], *project["tool"]["setuptools"]["package-dir"].values()}
    copied = {source.rstrip("/") for source in image().copied}
    assert needed <= copied, f"deploy/Dockerfile does not copy {sorted(needed - copied)}"
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines and copied <= allowed, f"Dockerfile.dockerignore leaves {sorted(copied - allowed)} out of the build context"


# --- both deployments -------------------------------------------------------------------------------------


def test_the_processes_form_one_bytewax_cluster(cluster: list[Process]) -> None:
    addresses = cluster[0].args.addresses
    assert len(addresses) == len(cluster), f"--addresses lists {len(addresses)} processes, {len(cluster)} run"
    assert sorted(process.args.process_id for process in cluster) == list(range(len(cluster)))
    for process in cluster:
        assert process.args.command == "run"
        assert process.args.addresses == addresses, f"{process.where}: every process needs the same --addresses"
        assert process.args.workers == cluster[0].args.workers, f"{process.where}: Bytewax needs the same --workers everywhere"
        assert addresses[process.args.process_id] == f"{process.host}:{cluster_port(cluster)}", f"{process.where}: its own address"
        assert process.args.follow and process.args.pipeline == cluster[0].args.pipeline


def test_ports_are_the_ones_the_image_exposes(cluster: list[Process]) -> None:
    metrics = {process.args.metrics_port for process in cluster}
    assert len(metrics) == 1, f"--metrics-port differs between processes: {metrics}"
    assert image().exposed == {cluster_port(cluster), *metrics}


def test_each_process_keeps_its_own_recovery_folder_and_all_write_one_lake(cluster: list[Process]) -> None:
    recovery = {(mount_of(process, process.args.recovery_dir), process.args.recovery_dir) for process in cluster}
    assert len(recovery) == len(cluster), f"processes share a recovery folder: {sorted(map(str, recovery))}"
    lakes = {(mount_of(process, process.env["LOGLAKE_LAKE"]), process.env["LOGLAKE_LAKE"]) for process in cluster}
    assert len(lakes) == 1, f"the processes write different lakes: {lakes}"
    for process in cluster:
        mount_of(process, process.args.pipeline)


DOCUMENTED = [DEPLOY / "README.md", DEPLOY / "compose.yaml", KAFKA_PIPELINE, EXAMPLES / "producers" / "README.md"]


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """`loglake …` command lines shown in the deployment docs and comments, as argv."""
    for path in DOCUMENTED:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in re.finditer(r"(?:^|[$#]\s+|exec \S+ )loglake (.+)$", line.strip()):
                argv = shlex.split(match[1].rstrip(" &"), comments=True)
                yield f"{path.relative_to(REPO)}:{number}", argv


@pytest.mark.parametrize("where, argv", [pytest.param(where, argv, id=where) for where, argv in documented_commands()])
def test_documented_commands_parse(where: str, argv: list[str]) -> None:
    parse_cli(argv, {}, where)


def test_the_pipeline_the_deployments_run_is_valid() -> None:
    spec = load_pipeline(KAFKA_PIPELINE, environ={"KAFKA_BROKERS": "kafka:9092"})
    (source,) = [node for node in spec.nodes.values() if node.kind == "source"]
    assert (source.type_name, source.config.topics) == ("kafka", ["app-logs"])


# --- compose ----------------------------------------------------------------------------------------------


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_mounts_the_example_pipeline_and_declares_its_volumes() -> None:
    services, volumes = compose()["services"], compose()["volumes"]
    for name, service in services.items():
        for target, source in compose_mounts(service).items():
            if source.startswith((".", "/")):
                assert (DEPLOY / source).resolve().exists(), f"compose service {name}: {source} does not exist"
            else:
                assert source in volumes, f"compose service {name}: volume '{source}' is not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"compose service {name} depends on unknown '{dependency}'"
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for process in compose_processes():
        assert (DEPLOY / process.mounts[str(process.args.pipeline)]).resolve() == KAFKA_PIPELINE
        for target, source in process.mounts.items():
            if source in volumes:  # a fresh named volume takes the owner of the image's folder: it must exist there
                assert target in image().run, f"{process.where}: the image does not create {target} for its user"


def test_compose_images_are_consistent() -> None:
    services = compose()["services"]
    ours = {service["image"] for service in services.values() if "build" in service or service["image"].startswith("loglake")}
    assert ours == {loglake_image()}
    assert services["kafka-init"]["image"] == services["kafka"]["image"]


def test_compose_reads_the_topic_it_creates_from_the_kafka_it_runs() -> None:
    services = compose()["services"]
    kafka = services["kafka"]["environment"]
    init = services["kafka-init"]["command"]
    processes = compose_processes()
    (broker,) = {process.env["KAFKA_BROKERS"] for process in processes}
    advertised = dict(reversed(listener.split("://")) for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert broker in advertised, f"KAFKA_BROKERS={broker} is not an address kafka advertises ({kafka['KAFKA_ADVERTISED_LISTENERS']})"
    host, _, port = broker.rpartition(":")
    assert services["kafka"]["hostname"] == host and f"{advertised[broker]}://:{port}" in kafka["KAFKA_LISTENERS"].split(",")
    assert option(init, "--bootstrap-server") == broker == option(services["demo-app"]["command"], "--brokers")

    spec = yaml.safe_load(KAFKA_PIPELINE.read_text(encoding="utf-8"))
    (source,) = spec["sources"].values()
    assert source["topics"] == [option(init, "--topic")] == [option(services["demo-app"]["command"], "--topic")]
    workers = sum(process.args.workers for process in processes)
    assert int(option(init, "--partitions")) >= workers, "some workers would get no partition to read"


def test_compose_healthcheck_and_published_ports_use_the_metrics_port() -> None:
    services = compose()["services"]
    for process in compose_processes():
        service = services[process.name]
        (url_port,) = re.findall(r"127\.0\.0\.1:(\d+)/metrics", " ".join(service["healthcheck"]["test"]))
        assert int(url_port) == process.args.metrics_port, f"{process.where}: the healthcheck asks another port"
        published = [int(str(mapping).rpartition(":")[2]) for mapping in service.get("ports", [])]
        assert published == [process.args.metrics_port], f"{process.where}: publishes {published}"


# --- Kubernetes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("document", [pytest.param(doc, id=f"{doc['kind']}/{doc['metadata']['name']}") for doc in k8s_documents()])
def test_k8s_manifests_match_the_kubernetes_schema(document: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)  # strict: unknown fields (typos) fail too


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port given by name or number, as the container's declared port number."""
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    number = declared[port] if isinstance(port, str) else port
    assert number in declared.values(), f"container port {port} is not declared"
    return int(number)


def test_k8s_ports_probes_and_service_agree(pods: list[Process]) -> None:
    container, sts = loglake_container(), statefulset()
    metrics, cluster = pods[0].args.metrics_port, cluster_port(pods)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"cluster": cluster, "metrics": metrics}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == metrics, f"{probe} asks another port"

    service = k8s_objects("Service")[sts["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None", "pods get stable DNS names only from a headless Service"
    assert service["spec"]["publishNotReadyAddresses"], "the processes must find each other before any is ready"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items() and sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    served = {p["name"]: (p["port"], container_port(container, p["targetPort"])) for p in service["spec"]["ports"]}
    assert served == {"cluster": (cluster, cluster), "metrics": (metrics, metrics)}
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "pod 1 must not wait for pod 0 to be ready: it never is alone"


def test_k8s_volumes_config_and_resources_are_declared(pods: list[Process]) -> None:
    sts, container, process = statefulset(), loglake_container(), pods[0]
    pod = sts["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    per_pod = {template["metadata"]["name"] for template in sts["spec"]["volumeClaimTemplates"]}
    mounted = {mount["name"] for mount in container["volumeMounts"]}
    assert mounted <= volumes.keys() | per_pod and not volumes.keys() & per_pod

    own_claims = {f"{template}-{process.name}" for template in per_pod}  # the claims Kubernetes makes for the pod
    assert mount_of(process, process.args.recovery_dir) in own_claims, "recovery state must be on the pod's own volume"
    lake = volumes[mount_of(process, process.env["LOGLAKE_LAKE"])]
    claim = k8s_objects("PersistentVolumeClaim")[lake["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every pod writes the lake"

    pipeline = PurePosixPath(process.args.pipeline)
    config_map = k8s_objects("ConfigMap")[volumes[mount_of(process, pipeline)]["configMap"]["name"]]
    assert config_map["data"][pipeline.name] == KAFKA_PIPELINE.read_text(encoding="utf-8"), (
        "the ConfigMap's pipeline differs from examples/kafka/pipeline.yaml; copy the file into deploy/k8s/configmap.yaml"
    )

    assert container["image"] == loglake_image() == compose()["services"]["loglake-0"]["image"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] and str(security["runAsUser"]) == str(security["fsGroup"]) == image().user
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert quantity(limits["memory"]) <= MEMORY_LIMIT
    assert all(quantity(requests[key]) <= quantity(limits[key]) for key in ("cpu", "memory"))
    assert process.args.workers <= quantity(limits["cpu"]), "more worker threads than CPUs"

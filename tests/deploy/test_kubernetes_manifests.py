"""deploy/kubernetes/ is valid Kubernetes and its parts agree with each other (offline)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import kubernetes_validate
import pytest

from server.auth import write_operator_token
from tests.deploy.manifests import (
    container,
    documents,
    find,
    flag_values,
    resolved_args,
    secret_manifest,
)

#: The oldest Kubernetes the manifests need (the StatefulSet's pod-index label) and the newest
#: kubernetes-validate knows.
VERSIONS = ["1.28.0", kubernetes_validate.latest_version() + ".0"]

SHARDS = find("StatefulSet", "daytrade-shard")
GATEWAY = find("Deployment", "daytrade-gateway")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", documents(),
                         ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"])
def test_every_manifest_is_valid_kubernetes(version: str, name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_secret_script_makes_an_operator_token_the_gateway_keeps(tmp_path: Path) -> None:
    token = secret_manifest()["stringData"]["operator-token"]
    # What the gateway's init container does: the token in the data dir, mode 0600.
    fd = os.open(tmp_path / "operator.token", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, token.encode())
    os.close(fd)
    assert write_operator_token(tmp_path)[0] == token


def test_the_secret_script_makes_new_secrets_on_every_run() -> None:
    first, second = secret_manifest()["stringData"], secret_manifest()["stringData"]
    assert first["operator-token"] != second["operator-token"]
    assert first["cluster-secret"] != second["cluster-secret"]
    assert len(first["cluster-secret"].strip()) >= 16


def test_the_shard_count_is_the_same_in_the_statefulset_the_shards_and_the_gateway() -> None:
    count = SHARDS["spec"]["replicas"]
    shard = container(SHARDS, "shard")
    assert flag_values(resolved_args(shard), "--of") == [str(count)]
    for probe in ("readinessProbe", "livenessProbe"):
        command = shlex.split(shard[probe]["exec"]["command"][-1])
        assert flag_values(command, "--of") == [str(count)]
    indexes = [s.split("=")[0] for s in flag_values(gateway_args(), "--shard")]
    assert indexes == [str(k) for k in range(count)]


def test_each_pod_of_the_statefulset_serves_the_shard_of_its_ordinal() -> None:
    shard = container(SHARDS, "shard")
    for ordinal in range(SHARDS["spec"]["replicas"]):
        assert flag_values(resolved_args(shard, ordinal), "--index") == [str(ordinal)]


def test_the_gateway_connects_to_each_shard_by_its_stable_name_and_port() -> None:
    service = find("Service", SHARDS["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"  # headless: one DNS name per pod
    listen = flag_values(resolved_args(container(SHARDS, "shard")), "--listen")[0]
    port = int(listen.rsplit(":", 1)[1])
    assert service["spec"]["ports"][0]["port"] == port
    for spec in flag_values(gateway_args(), "--shard"):
        index, address = spec.split("=")
        name = f"{SHARDS['metadata']['name']}-{index}.{service['metadata']['name']}"
        assert address == f"{name}:{port}"


def test_each_service_selects_the_pods_of_its_workload() -> None:
    workloads = [doc for _, doc in documents() if doc["kind"] in ("Deployment", "StatefulSet")]
    for _, service in documents():
        if service["kind"] != "Service":
            continue
        selected = [w for w in workloads
                    if service["spec"]["selector"].items()
                    <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in selected[0]["spec"]["template"]["spec"][
            "containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)


def test_every_secret_a_pod_mounts_is_a_key_the_secret_script_makes() -> None:
    made = secret_manifest()
    for _, doc in documents():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == made["metadata"]["name"]
                for item in volume["secret"]["items"]:
                    assert item["key"] in made["stringData"]


def test_every_file_a_flag_names_is_a_mounted_secret_item() -> None:
    for workload, name, args in ((SHARDS, "shard", resolved_args(container(SHARDS, "shard"))),
                                 (GATEWAY, "gateway", gateway_args())):
        mounted = mounted_secret_files(workload, name)
        for path in flag_values(args, "--cluster-secret"):
            assert path in mounted, (name, path, mounted)


def test_the_gateway_copies_the_operator_token_from_a_mounted_secret_into_its_data_dir() -> None:
    pod = GATEWAY["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    source, target = re.search(r"install -m 0600 (\S+) (\S+)", init["command"][-1]).groups()
    assert source in mounted_secret_files(GATEWAY, init["name"], init=True)
    data_dir = flag_values(gateway_args(), "--data-dir")[0]
    assert target == f"{data_dir}/operator.token"
    data_volume = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}[data_dir]
    gateway_mounts = {m["mountPath"]: m["name"] for m in container(GATEWAY, "gateway")[
        "volumeMounts"]}
    assert gateway_mounts[data_dir] == data_volume


def test_each_shard_keeps_its_data_dir_on_a_volume_of_its_own() -> None:
    data_dir = flag_values(resolved_args(container(SHARDS, "shard")), "--data-dir")[0]
    mounts = {m["mountPath"]: m["name"] for m in container(SHARDS, "shard")["volumeMounts"]}
    claims = [t["metadata"]["name"] for t in SHARDS["spec"]["volumeClaimTemplates"]]
    assert mounts[data_dir] in claims


def gateway_args() -> list[str]:
    return resolved_args(container(GATEWAY, "gateway"))


def mounted_secret_files(workload: dict, name: str, init: bool = False) -> set[str]:
    """The paths at which container `name` sees a Secret's items."""
    pod = workload["spec"]["template"]["spec"]
    containers = pod["initContainers"] if init else pod["containers"]
    (spec,) = [c for c in containers if c["name"] == name]
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    files = set()
    for mount in spec.get("volumeMounts", []):
        for item in secrets.get(mount["name"], {}).get("items", []):
            files.add(f"{mount['mountPath']}/{item['path']}")
    return files


def test_the_quote_simulator_args_are_accepted_by_daytrade_quotes() -> None:
    from server.quotes.simulator import _parser

    quotes = find("Deployment", "daytrade-quotes")
    args = resolved_args(container(quotes, "quotes"))
    assert args[0] == "quotes"
    parsed = _parser().parse_args(args[1:])
    host, port = find("ConfigMap", "daytrade-config")["data"]["quote-server"].split(":")
    assert find("Service", host)["spec"]["ports"][0]["port"] == parsed.port == int(port)

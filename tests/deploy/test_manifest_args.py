"""The manifests' command lines are accepted by the real argparse of `daytrade shard`,
`daytrade shard-probe` and `daytrade up`, so they cannot drift from the CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

from server.cluster import from_flags
from server.shard_command import _parser as shard_parser
from server.shard_probe import _parser as probe_parser
from server.shards.handshake import read_secret
from server.up import _parser as up_parser
from tests.deploy.manifests import (
    container,
    container_filesystem,
    find,
    resolved_args,
    secret_manifest,
)

SHARDS = find("StatefulSet", "daytrade-shard")
GATEWAY = find("Deployment", "daytrade-gateway")


def args_here(workload: dict, name: str, tmp_path: Path, pod_index: int = 0) -> list[str]:
    """The container's args, its mounted Secret files written under tmp_path."""
    here = container_filesystem(workload, name, tmp_path, secret_manifest()["stringData"])
    return [here(arg) for arg in resolved_args(container(workload, name), pod_index)]


def test_each_shard_pods_args_are_accepted_by_daytrade_shard(tmp_path: Path) -> None:
    for ordinal in range(SHARDS["spec"]["replicas"]):
        args = args_here(SHARDS, "shard", tmp_path, ordinal)
        assert args[0] == "shard"
        parsed = shard_parser().parse_args(args[1:])
        assert (parsed.index, parsed.of) == (ordinal, SHARDS["spec"]["replicas"])
        assert read_secret(parsed.cluster_secret)


def test_the_shard_probes_are_accepted_by_daytrade_shard_probe(tmp_path: Path) -> None:
    here = container_filesystem(SHARDS, "shard", tmp_path, secret_manifest()["stringData"])
    shard = container(SHARDS, "shard")
    for probe in ("readinessProbe", "livenessProbe"):
        shell, flag, script = shard[probe]["exec"]["command"]
        assert (shell, flag) == ("sh", "-c")
        words = shlex.split(script.replace("$SHARD_INDEX", "1"))
        assert words[:3] == ["exec", "daytrade", "shard-probe"]
        parsed = probe_parser().parse_args([here(w) for w in words[3:]])
        assert parsed.index == 1
        assert parsed.timeout < shard[probe]["timeoutSeconds"]


def test_the_gateway_args_are_accepted_by_daytrade_up(tmp_path: Path) -> None:
    args = args_here(GATEWAY, "gateway", tmp_path)
    assert args[0] == "up"
    parsed = up_parser().parse_args(args[1:])
    assert len(from_flags(parsed.shard)) == SHARDS["spec"]["replicas"]
    assert read_secret(parsed.cluster_secret)

"""The Kubernetes manifests of deploy/kubernetes/ read as data, with what a pod would see."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = DEPLOY / "kubernetes"

#: `$(NAME)` in a container's args: Kubernetes puts the container's env var NAME there.
_ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def secret_manifest() -> dict[str, Any]:
    """A Secret as deploy/kubernetes/make_secrets.py prints it (fresh values each call)."""
    spec = importlib.util.spec_from_file_location("make_secrets", MANIFESTS / "make_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.secret_manifest()


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every YAML document shipped, and the Secret the script makes."""
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    found.append(("make_secrets.py", secret_manifest()))
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    """The one document of `kind` named `name`."""
    matches = [doc for _, doc in documents()
               if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """The container `name` of a Deployment's or StatefulSet's pod template."""
    (found,) = [c for c in workload["spec"]["template"]["spec"]["containers"]
                if c["name"] == name]
    return found


def env_values(spec: dict[str, Any], pod_index: int) -> dict[str, str]:
    """The container's env as the pod `pod_index` of its StatefulSet gets it."""
    values = {}
    for var in spec.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path == "metadata.labels['apps.kubernetes.io/pod-index']", path
            values[var["name"]] = str(pod_index)
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            values[var["name"]] = find("ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            raise AssertionError(f"unexpected env source {source}")
    return values


def resolved_args(spec: dict[str, Any], pod_index: int = 0) -> list[str]:
    """The container's args with each `$(VAR)` replaced as Kubernetes does."""
    env = env_values(spec, pod_index)

    def value(m: re.Match[str]) -> str:
        assert m.group(1) in env, f"$({m.group(1)}) is not in the container's env"
        return env[m.group(1)]

    return [_ENV_REFERENCE.sub(value, arg) for arg in spec["args"]]


def flag_values(args: list[str], flag: str) -> list[str]:
    """Every value given to `flag` in `args` (`--flag VALUE` form)."""
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def container_filesystem(workload: dict[str, Any], name: str, root: Path,
                         stringdata: dict[str, str]) -> Callable[[str], str]:
    """Write the Secret items container `name` mounts under `root` (with `stringdata` as the
    Secret's values), and return the map from a path in the container to its copy here."""
    pod = workload["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    (spec,) = [c for c in pod["containers"] if c["name"] == name]
    mounts = []
    for mount in spec.get("volumeMounts", []):
        for item in secrets.get(mount["name"], {}).get("items", []):
            target = root / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(stringdata[item["key"]])
        mounts.append(mount["mountPath"])

    def here(path: str) -> str:
        for mount_path in mounts:
            if path.startswith(mount_path + "/"):
                return str(root / path.lstrip("/"))
        return path

    return here

"""Print the daytrade-secrets Secret with a fresh operator token and cluster secret.

    python3 deploy/kubernetes/make_secrets.py | kubectl apply -f -

Run it once per deployment: a new cluster secret needs every shard and the gateway restarted,
a new operator token logs every operator client out. The output is JSON, which is YAML too.
"""

from __future__ import annotations

import json
import secrets
import sys


def secret_manifest() -> dict:
    """The Secret: an operator token as the gateway writes its own (43 URL-safe characters) and a
    cluster secret of 32 random bytes in hex."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "daytrade-secrets",
                     "labels": {"app.kubernetes.io/part-of": "daytrade"}},
        "type": "Opaque",
        "stringData": {
            "operator-token": secrets.token_urlsafe(32),
            "cluster-secret": secrets.token_hex(32),
        },
    }


if __name__ == "__main__":
    json.dump(secret_manifest(), sys.stdout, indent=2)
    sys.stdout.write("\n")

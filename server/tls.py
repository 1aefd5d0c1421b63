"""The TLS listener of `daytrade up`: the same line protocol as the plain port, over TLS.

Needs pyOpenSSL (`pip install 'twisted[tls]'`). The certificate and key are PEM files; a client
that speaks plaintext to the TLS port fails its handshake and is disconnected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def certificate_options(cert_path: str | Path, key_path: str | Path) -> Any:
    """Twisted's server-side TLS options for a PEM certificate and key (TLS 1.2 or newer)."""
    from twisted.internet import ssl

    pem = ssl.PrivateCertificate.loadPEM(
        Path(key_path).read_text() + Path(cert_path).read_text())
    return ssl.CertificateOptions(privateKey=pem.privateKey.original, certificate=pem.original,
                                  raiseMinimumTo=ssl.TLSVersion.TLSv1_2)


def listen_tls(reactor: Any, factory: Any, port: int, cert_path: str | Path,
               key_path: str | Path, interface: str = "127.0.0.1") -> Any:
    """Listen for TLS clients of `factory` on `port` (0: any free port); the listening port."""
    return reactor.listenSSL(port, factory, certificate_options(cert_path, key_path),
                             interface=interface, backlog=1024)


def client_options(hostname: str, ca_path: str | Path) -> Any:
    """Twisted's client-side TLS options that trust the PEM certificate in `ca_path` (a CA, or
    a shard's own self-signed certificate) for `hostname` (TLS 1.2 or newer)."""
    from twisted.internet import ssl

    authority = ssl.Certificate.loadPEM(Path(ca_path).read_text())
    return ssl.optionsForClientTLS(hostname, trustRoot=authority)

"""Every secret of a deployment: one file each in a private directory, generated once.

The same files serve every way to run the stack: the local stack keeps them in
`STATE/secrets/`, docker compose generates them into a volume mounted at /run/secrets (the
`secrets` service runs `votectl secrets init`), and for Swarm an operator creates a Docker
secret from each file (`docker-stack.yml` mounts them at /run/secrets too). Processes read
them through NAME_FILE settings, so no secret is ever an environment variable or a command
line argument of a container.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

# File name -> what it is. Passwords are 48 hex digits: safe in URLs and config lines.
PASSWORDS: dict[str, str] = {
    "secret-key": "Flask's SECRET_KEY: signs session cookies and CSRF tokens",
    # Redis ACL users of the data nodes (redis/users.acl).
    "redis-admin": "Redis user admin: operators and votectl (all commands)",
    "redis-replication": "Redis user replica: replicas syncing from the master",
    "redis-sentinel": "Redis user sentinel: the Sentinels monitoring and reconfiguring nodes",
    "redis-vote": "Redis user vote: the vote app (sessions, the vote stream)",
    "redis-result": "Redis user result: the result app (sessions)",
    "redis-login": "Redis user login: the login app (sessions, rate limits)",
    "redis-worker": "Redis user worker: the workers (the vote stream's consumer group)",
    "redis-exporter": "Redis user exporter: the Prometheus exporter (INFO and friends)",
    "redis-backup": "Redis user backup: RDB snapshots",
    # ACL users of the Sentinels (sentinel/sentinel.conf).
    "sentinel-admin": "Sentinel user admin: operators and votectl",
    "sentinel-peer": "Sentinel user peer: the Sentinels among themselves",
    "sentinel-app": "Sentinel user app: apps, workers and backups finding the master",
    "sentinel-exporter": "Sentinel user exporter: the Prometheus exporter",
    # PostgreSQL roles.
    "pg-superuser": "Postgres superuser postgres (Patroni; provisioning only)",
    "pg-replication": "Postgres role replicator (streaming replication)",
    "pg-rewind": "Postgres role rewind (pg_rewind of a demoted leader)",
    "pg-owner": "Postgres role vote_owner: owns the schema, runs migrations (votectl db)",
    "pg-vote": "Postgres role vote_app: the vote app (reads a voter's own row)",
    "pg-result": "Postgres role vote_result: the result app (reads tallies and polls)",
    "pg-login": "Postgres role vote_login: the login app (accounts, polls)",
    "pg-worker": "Postgres role vote_worker: the workers (writes votes and tallies)",
    "pg-exporter": "Postgres role vote_monitor: the exporters (pg_monitor)",
    "pg-backup": "Postgres role vote_backup: pg_dump (reads everything, writes nothing)",
    "patroni-restapi": "Patroni REST API user patroni (switchover, restart)",
    "etcd-root": "etcd user root (enables authentication, manages users)",
    "etcd-patroni": "etcd user patroni (Patroni's leader key and cluster state)",
    "haproxy-stats": "HAProxy stats page user admin",
    "grafana-admin": "Grafana user admin",
}
# HAProxy's certificate and key, one PEM file; self-signed unless replaced by a real one.
TLS_PEM = "tls.pem"
SELF_SIGNED_ORG = "ha-vote self-signed certificate (replace it with a real one)"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def self_signed_pem(hostnames: list[str], days: int = 825) -> bytes:
    """A self-signed certificate for `hostnames` (names or IP addresses) and its key, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_SIGNED_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
        ]
    )
    alt: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure(directory: Path, hostnames: list[str] | None = None) -> dict[str, str]:
    """Create every missing secret in `directory` (0700; files 0600); never change one.

    Returns the passwords by file name (the certificate is left in its file).
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name in PASSWORDS:
        path = directory / name
        if not path.exists():
            _write_private(path, secrets.token_hex(24).encode())
    if not (directory / TLS_PEM).exists():
        _write_private(
            directory / TLS_PEM, self_signed_pem(hostnames or ["localhost", "127.0.0.1"])
        )
    return load(directory)


def load(directory: Path) -> dict[str, str]:
    """The passwords in `directory`, by file name."""
    return {
        name: (directory / name).read_text().strip()
        for name in PASSWORDS
        if (directory / name).exists()
    }


def is_self_signed(pem_path: Path) -> bool:
    """Whether the certificate in `pem_path` is the one `ensure` generated."""
    return _org(pem_path) == SELF_SIGNED_ORG


def _org(pem_path: Path) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(orgs[0].value) if orgs else None

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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Identity:
    """Who a service is at Redis, at the Sentinels and in Postgres; each name's password is
    in the secret file of the same kind (redis-<user>, sentinel-<user>, pg-<...>)."""

    redis_user: str
    sentinel_user: str
    pg_role: str
    pg_secret: str

    @property
    def redis_secret(self) -> str:
        return f"redis-{self.redis_user}"

    @property
    def sentinel_secret(self) -> str:
        return f"sentinel-{self.sentinel_user}"


# Every service of the stack and its identities (docs/SECURITY.md says what each may do;
# redis/users.acl, sentinel/sentinel.conf and ops/db.py grant it).
IDENTITIES: dict[str, Identity] = {
    "vote": Identity("vote", "app", "vote_app", "pg-vote"),
    "result": Identity("result", "app", "vote_result", "pg-result"),
    "login": Identity("login", "app", "vote_login", "pg-login"),
    "worker": Identity("worker", "app", "vote_worker", "pg-worker"),
    "backup": Identity("backup", "app", "vote_backup", "pg-backup"),
    "exporter": Identity("exporter", "exporter", "vote_monitor", "pg-exporter"),
    # Operators: votectl status/drills/switchover, migrations (the schema's owner).
    "admin": Identity("admin", "admin", "vote_owner", "pg-owner"),
}

# HAProxy's certificate and key, one PEM file; self-signed unless replaced by a real one.
TLS_PEM = "tls.pem"
# The CA that signed a self-signed tls.pem, for clients that must trust it (tests, drills,
# benchmarks, a browser you add it to). Absent when tls.pem was put there by the operator.
TLS_CERT = "tls-ca.crt"
SELF_SIGNED_ORG = "ha-vote self-signed certificate (replace it with a real one)"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def self_signed_pem(hostnames: list[str], days: int = 825) -> tuple[bytes, bytes]:
    """A certificate for `hostnames` (names or IP addresses) and its key, as one PEM, signed
    by a throwaway CA whose certificate is returned too (clients trust that; its key is
    never stored, so it can sign nothing else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_SIGNED_ORG),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("ha-vote self-signed CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    alt: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(hostnames[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, ca.public_bytes(serialization.Encoding.PEM)


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
        pem, ca = self_signed_pem(hostnames or ["localhost", "127.0.0.1"])
        (directory / TLS_CERT).unlink(missing_ok=True)
        _write_private(directory / TLS_PEM, pem)
        _write_private(directory / TLS_CERT, ca)
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

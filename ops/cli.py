"""votectl: run the HA voting stack locally, inspect any deployment, provision its database."""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import IntEnum
from pathlib import Path
from typing import NoReturn

import click

from core.config import ConfigError, environment
from ops import backup as backup_mod
from ops import backup_schedule
from ops import status as status_mod
from ops.deployment import Deployment, local_stack_settings, remote_from_env
from ops.local.deployment import app_env, local_deployment, stack_secrets
from ops.local.layout import APP_DB, APP_ROLE, Layout, LayoutError


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNHEALTHY = 3


class CliError(click.ClickException):
    """A one-line error with its own exit status."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.exit_code = int(status)


def _layout(ctx: click.Context) -> Layout:
    return ctx.obj["layout"]


def _deployment(ctx: click.Context, overrides: dict[str, str] | None = None) -> Deployment:
    """The deployment the environment (and `overrides`) names, else the local stack."""
    try:
        remote = remote_from_env({**os.environ, **(overrides or {})})
    except ConfigError as exc:
        raise CliError(str(exc), ExitStatus.USAGE) from None
    return remote or local_deployment(_layout(ctx))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the local stack keeps data, logs, configs and passwords "
    "[env VOTECTL_STATE_DIR; default: .stack in the checkout].",
)
@click.option(
    "--base-port",
    type=int,
    default=None,
    help="Every local port is derived from this one [env VOTECTL_BASE_PORT; "
    "default 17000: web 17080, HAProxy stats 17404, Postgres rw/ro 17500/17501].",
)
@click.pass_context
def cli(ctx: click.Context, state_dir: str | None, base_port: int | None) -> None:
    """Run and inspect the HA voting stack.

    The local stack runs as plain processes on 127.0.0.1 under supervisord: 3 Redis nodes,
    3 Sentinels, etcd, 3 Patroni/PostgreSQL members, HAProxy, Prometheus, 2 instances each of
    the vote, result and login apps, and 2 workers.
    """
    try:
        default_dir, default_port = local_stack_settings()
        layout = Layout(
            state_dir=Path(state_dir).resolve() if state_dir else default_dir,
            base_port=base_port if base_port is not None else default_port,
        )
    except (LayoutError, ConfigError) as exc:
        raise CliError(str(exc), ExitStatus.USAGE) from None
    ctx.obj = {"layout": layout}


def _print_urls(layout: Layout) -> None:
    creds = stack_secrets(layout)
    click.echo("\nThe stack is up:")
    for name, url in layout.urls().items():
        click.echo(f"  {name:<11} {url}")
    click.echo(
        f"  (stats login: admin / {creds['haproxy-stats']}; every password and the "
        f"self-signed TLS certificate: {layout.secrets_dir})"
    )
    click.echo("Stop it with: votectl down   (add --purge to delete its data)")


@cli.command()
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops everything.")
@click.option("--no-apps", is_flag=True, help="Only the data layer (no apps, no workers).")
@click.option(
    "--timeout",
    type=float,
    default=180,
    show_default=True,
    help="Seconds to wait for every component to be healthy.",
)
@click.pass_context
def up(ctx: click.Context, foreground: bool, no_apps: bool, timeout: float) -> None:
    """Start the local stack and return once every component is healthy."""
    from ops.local import stack as stack_mod
    from ops.local.health import Unhealthy
    from ops.local.supervisor import SupervisorError

    layout = _layout(ctx)
    try:
        proc = stack_mod.up(
            layout,
            apps=not no_apps,
            timeout=timeout,
            foreground=foreground,
            progress=lambda msg: click.echo(f"  {msg}"),
        )
    except Unhealthy as exc:
        raise CliError(str(exc), ExitStatus.UNHEALTHY) from None
    except (stack_mod.StackError, SupervisorError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    _print_urls(layout)
    if foreground and proc is not None:
        click.echo("Attached: press Ctrl-C to stop the stack.")

        def interrupt(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        # Ctrl-C, a closed terminal or a service manager's SIGTERM all stop the stack.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, interrupt)
        try:
            proc.wait()
        except KeyboardInterrupt:
            click.echo("\nstopping...")
            stack_mod.down(layout, progress=lambda msg: click.echo(f"  {msg}"))


@cli.command()
@click.option("--purge", is_flag=True, help="Also delete the state dir (data, logs, passwords).")
@click.pass_context
def down(ctx: click.Context, purge: bool) -> None:
    """Stop the local stack; nothing it started keeps running."""
    from ops.local import stack as stack_mod

    stack_mod.down(_layout(ctx), purge=purge, progress=lambda msg: click.echo(f"  {msg}"))


def _member_command(action: str):
    @click.argument("member")
    @click.pass_context
    def command(ctx: click.Context, member: str) -> None:
        from ops.local import stack as stack_mod
        from ops.local.supervisor import SupervisorError

        layout = _layout(ctx)
        try:
            supervisor = stack_mod.running_supervisor(layout)
            stack_mod.require_member(supervisor, member)
            if action == "stop":
                supervisor.stop(member)
            elif action == "start":
                supervisor.start(member)
            else:
                supervisor.signal(member, "KILL")
        except (stack_mod.StackError, SupervisorError) as exc:
            raise CliError(str(exc)) from None
        click.echo(f"{member}: {supervisor.state(member)}")

    return command


cli.command("stop", help="Stop one member gracefully, e.g. redis-1, sentinel-2, patroni-3.")(
    _member_command("stop")
)
cli.command("start", help="Start one member again (a Redis node rejoins as a replica).")(
    _member_command("start")
)
cli.command("kill", help="SIGKILL one member (failure drills); supervisord may restart it.")(
    _member_command("kill")
)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--sentinels",
    default=None,
    help="host:port,... of a deployment's Sentinels [env REDIS_SENTINELS; default: the local "
    "stack].",
)
@click.option("--master-name", default=None, help="[env REDIS_MASTER_NAME; default mymaster]")
@click.option(
    "--patroni",
    "patroni_urls",
    multiple=True,
    help="A Patroni REST URL, repeated for each member [env PATRONI_URLS, comma-separated].",
)
@click.option(
    "--haproxy-stats", default=None, help="HAProxy stats page URL [env HAPROXY_STATS_URL]."
)
@click.option(
    "--haproxy-auth", default=None, help="user:password of the stats page [env HAPROXY_STATS_AUTH]."
)
@click.pass_context
def status(
    ctx: click.Context,
    as_json: bool,
    sentinels: str | None,
    master_name: str | None,
    patroni_urls: tuple[str, ...],
    haproxy_stats: str | None,
    haproxy_auth: str | None,
) -> None:
    """Show the Redis master and replicas, Sentinel quorum, Patroni roles and HAProxy's view.

    Passwords come from the environment (REDIS_PASSWORD, SENTINEL_PASSWORD; see the README's
    table of votectl's environment), never from the command line.
    """
    given = {
        "REDIS_SENTINELS": sentinels,
        "REDIS_MASTER_NAME": master_name,
        "PATRONI_URLS": ",".join(patroni_urls),
        "HAPROXY_STATS_URL": haproxy_stats,
        "HAPROXY_STATS_AUTH": haproxy_auth,
    }
    result = status_mod.collect(_deployment(ctx, {k: v for k, v in given.items() if v}))
    click.echo(json.dumps(result, indent=2) if as_json else status_mod.render_text(result))
    healthy = (
        result["redis"]["master"]
        and result["sentinel"]["quorum_ok"]
        and result["postgres"]["leader"]
    )
    if not healthy:
        ctx.exit(ExitStatus.UNHEALTHY)


@cli.command("env")
@click.argument(
    "service", type=click.Choice(["admin", "vote", "result", "login", "worker"]), default="admin"
)
@click.pass_context
def env_command(ctx: click.Context, service: str) -> None:
    """Print a service's environment for the local stack (eval "$(votectl env)").

    SERVICE is whose identities to use at Redis, the Sentinels and Postgres: admin (the
    default: operators, benchmarks; the schema's owner) or one app or the worker. Passwords
    are given as *_FILE paths into the stack's private secrets dir."""
    layout = _layout(ctx)
    stack_secrets(layout)
    for key, value in app_env(layout, service).items():
        click.echo(f"export {key}='{value}'")


@cli.group()
def db() -> None:
    """Provision the app's database: role, database, schema."""


@db.command("init")
@click.pass_context
def db_init(ctx: click.Context) -> None:
    """Create the roles and the database, migrate, grant (the local stack; or a deployment's
    PG_SUPERUSER_URL + VOTECTL_SECRETS_DIR + DATABASE_URL (the owner's, its password as
    DATABASE_PASSWORD); or one role: PG_SUPERUSER_URL + APP_DB_PASSWORD [+ APP_DB_ROLE,
    APP_DB_NAME, DATABASE_URL])."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.migrate import upgrade
    from ops.db import ProvisionError, ensure_role_and_database

    env = environment()  # NAME_FILE too: compose and Swarm give passwords as files
    try:
        if env.get("PG_SUPERUSER_URL") and env.get("VOTECTL_SECRETS_DIR"):
            _provision_deployment(env)
        elif env.get("PG_SUPERUSER_URL"):
            password = env.get("APP_DB_PASSWORD")
            if not password:
                raise CliError("APP_DB_PASSWORD is not set", ExitStatus.USAGE)
            ensure_role_and_database(
                env["PG_SUPERUSER_URL"],
                env.get("APP_DB_ROLE", APP_ROLE),
                password,
                env.get("APP_DB_NAME", APP_DB),
            )
            if env.get("DATABASE_URL"):
                upgrade(env["DATABASE_URL"])
        else:
            from ops.local.stack import provision_database

            layout = _layout(ctx)
            provision_database(layout, stack_secrets(layout))
    except ProvisionError as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    click.echo("database ready")


def _provision_deployment(env) -> None:
    """compose and Swarm: a role per service with the passwords of the secrets directory."""
    from core.config import with_password
    from core.migrate import upgrade
    from ops import db as db_mod
    from ops import secrets as secrets_mod

    values = secrets_mod.load(Path(env["VOTECTL_SECRETS_DIR"]))
    owner = secrets_mod.IDENTITIES["admin"]
    try:
        roles = {who.pg_role: values[who.pg_secret] for who in secrets_mod.IDENTITIES.values()}
        url = with_password(
            env["DATABASE_URL"], env.get("DATABASE_PASSWORD") or values[owner.pg_secret]
        )
    except KeyError as exc:
        raise CliError(f"missing {exc.args[0]} (VOTECTL_SECRETS_DIR, DATABASE_URL)") from None
    db_mod.provision(env["PG_SUPERUSER_URL"], roles, env.get("APP_DB_NAME", APP_DB))
    upgrade(url)
    db_mod.grant(url)


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Run the schema migrations (DATABASE_URL, else the local stack's)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.migrate import upgrade

    url = _deployment(ctx).database_url
    if not url:
        raise CliError("DATABASE_URL is not set", ExitStatus.USAGE)
    try:
        upgrade(url)
    except SQLAlchemyError as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    click.echo("schema up to date")


def _pg_bindir() -> Path | None:
    try:
        from ops.local.host import pg_bindir

        return pg_bindir()
    except FileNotFoundError:
        return None


@cli.command("backup")
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Backup root [env BACKUP_DIR; local stack: STATE/backups].",
)
@click.option("--every", type=float, default=0, help="Keep running: one backup every N seconds.")
@click.option(
    "--keep",
    type=int,
    default=24,
    show_default=True,
    help="With --every: how many backups to keep.",
)
@click.option(
    "--metrics",
    "metrics_addr",
    default=None,
    help="With --every: serve the backups' Prometheus metrics on host:port.",
)
@click.pass_context
def backup_command(
    ctx: click.Context, dest: str | None, every: float, keep: int, metrics_addr: str | None
) -> None:
    """Dump the votes database (pg_dump) and snapshot the Redis master (RDB)."""
    target = _deployment(ctx)
    root = Path(dest) if dest else target.backup_dir or Path("backups")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # dumps hold password hashes and sessions
    if every > 0:
        _schedule_backups(root, every, keep, metrics_addr)
    bindir = _pg_bindir()
    try:
        path = backup_mod.take(backup_mod.source_of(target, bindir), root)
    except backup_mod.BackupError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"backup written to {path}")


def _schedule_backups(root: Path, every: float, keep: int, metrics_addr: str | None) -> NoReturn:
    """Become the small scheduler process (ops/backup_schedule.py) that runs this very
    command, once (`--every 0` last overrides), every `every` seconds."""
    if metrics_addr is not None:
        try:
            backup_schedule.metrics_address(metrics_addr)  # refused here, before exec
        except ValueError as exc:
            raise CliError(str(exc), ExitStatus.USAGE) from None
    this = [sys.executable, "-m", "ops.cli"] if sys.argv[0].endswith(".py") else [sys.argv[0]]
    once = [*this, *sys.argv[1:], "--every", "0"]
    args = ["--every", str(every), "--keep", str(keep), "--dest", str(root)]
    args += ["--metrics", metrics_addr] if metrics_addr else []
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "ops.backup_schedule", *args, "--", *once])


@cli.command("restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def restore_command(ctx: click.Context, backup_dir: str, yes: bool) -> None:
    """Replace the votes database with a backup's contents; Redis keeps its sessions and
    votes, and its copy of the polls is made to follow the restored database."""
    target = _deployment(ctx)
    if not yes:
        click.confirm(f"Replace the votes database with {backup_dir}?", abort=True)
    if not target.database_url:
        raise CliError("DATABASE_URL (the schema owner's) is not set", ExitStatus.USAGE)
    try:
        backup_mod.restore_database(target.database_url, Path(backup_dir), _pg_bindir())
        polls = backup_mod.republish_polls(target)
    except backup_mod.BackupError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"database restored from {backup_dir}; {polls.polls} polls published to Redis")


@cli.group("secrets")
def secrets_group() -> None:
    """Every password and the TLS certificate of a deployment, one file each."""


@secrets_group.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    required=True,
    help="Where the secret files go (created 0700; files 0600).",
)
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    help="A name or address the self-signed certificate is for (repeat; default localhost "
    "and 127.0.0.1). Ignored when DIR/tls.pem exists: put a real certificate there.",
)
def secrets_init(directory: str, hostnames: tuple[str, ...]) -> None:
    """Create the secrets that are missing in DIR; existing ones are never changed."""
    from ops import secrets as secrets_mod

    path = Path(directory)
    try:
        secrets_mod.ensure(path, list(hostnames) or None)
    except OSError as exc:
        raise CliError(f"cannot write secrets to {path}: {exc.strerror}") from None
    self_signed = secrets_mod.is_self_signed(path / secrets_mod.TLS_PEM)
    click.echo(
        f"{len(secrets_mod.PASSWORDS)} passwords and {secrets_mod.TLS_PEM} in {path}"
        + (" (a self-signed certificate)" if self_signed else "")
    )


@cli.command("etcd-auth")
@click.option("--endpoint", required=True, help="An etcd client URL, e.g. http://etcd1:2379.")
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, exists=True),
    required=True,
    help="Where etcd-root and etcd-patroni are (votectl secrets init).",
)
def etcd_auth_command(endpoint: str, secrets_dir: str) -> None:
    """Turn on etcd authentication: root, and a patroni user limited to /service/."""
    from ops import etcd_auth
    from ops import secrets as secrets_mod

    values = secrets_mod.load(Path(secrets_dir))
    try:
        changed = etcd_auth.enable(endpoint, values["etcd-root"], values["etcd-patroni"])
    except (etcd_auth.EtcdAuthError, KeyError) as exc:
        raise CliError(f"etcd authentication: {exc}") from None
    click.echo("etcd authentication enabled" if changed else "etcd authentication already on")


def _add_local_commands() -> None:
    """Drills and switchovers need the local stack's extras (psutil, supervisor)."""
    try:
        from ops.drill import commands as drill_commands
    except ImportError:  # an image without the [local] extra: backup, status and db only
        return
    cli.add_command(drill_commands.drill)
    cli.add_command(drill_commands.switchover)


_add_local_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit statuses from ExitStatus."""
    try:
        # Without standalone mode, click returns (not raises) the status of ctx.exit(n).
        status = cli.main(args=argv, prog_name="votectl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return ExitStatus.ERROR
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return ExitStatus.OK
    except click.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        click.echo(f"votectl: error: {exc.format_message()}{hint}", err=True)
        return ExitStatus.USAGE
    except click.ClickException as exc:
        click.echo(f"votectl: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return status if isinstance(status, int) else ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())

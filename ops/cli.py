"""votectl: run the HA voting stack locally, inspect any deployment, provision its database."""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import IntEnum
from pathlib import Path

import click

from ops import backup as backup_mod
from ops import credentials, drill_commands, render
from ops import stack as stack_mod
from ops import status as status_mod
from ops.health import Unhealthy
from ops.layout import (
    HOST,
    PATRONI_MEMBERS,
    SENTINELS,
    Layout,
    LayoutError,
    default_base_port,
    default_state_dir,
)
from ops.supervisor import SupervisorError


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
        layout = Layout(
            state_dir=Path(state_dir).resolve() if state_dir else default_state_dir(),
            base_port=base_port if base_port is not None else default_base_port(),
        )
    except LayoutError as exc:
        raise CliError(str(exc), ExitStatus.USAGE) from None
    ctx.obj = {"layout": layout}


def _print_urls(layout: Layout) -> None:
    creds = credentials.load_or_create(layout.secrets_file)
    click.echo("\nThe stack is up:")
    for name, url in layout.urls().items():
        click.echo(f"  {name:<11} {url}")
    click.echo(
        f"  (stats login: admin / {creds['HAPROXY_STATS_PASSWORD']}; all passwords: "
        f"{layout.secrets_file})"
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
    stack_mod.down(_layout(ctx), purge=purge, progress=lambda msg: click.echo(f"  {msg}"))


def _member_command(action: str):
    @click.argument("member")
    @click.pass_context
    def command(ctx: click.Context, member: str) -> None:
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


def _local_target(layout: Layout) -> status_mod.Target:
    creds = credentials.load_or_create(layout.secrets_file)
    return status_mod.Target(
        sentinels=[(HOST, int(a.rsplit(":", 1)[1])) for a in layout.sentinel_addrs],
        master_name=layout.master_name,
        redis_password=creds["REDIS_PASSWORD"],
        sentinel_password=creds["SENTINEL_PASSWORD"],
        patroni_urls=[f"http://{layout.addr(layout.api_port(m))}" for m in PATRONI_MEMBERS],
        haproxy_stats_url=layout.urls()["stats"],
        haproxy_stats_auth=("admin", creds["HAPROXY_STATS_PASSWORD"]),
        urls=layout.urls(),
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--sentinels",
    envvar="VOTECTL_SENTINELS",
    default=None,
    help="host:port,... of a deployment's Sentinels (default: the local stack).",
)
@click.option("--master-name", envvar="REDIS_MASTER_NAME", default="mymaster", show_default=True)
@click.option("--redis-password", envvar="REDIS_PASSWORD", default=None)
@click.option("--sentinel-password", envvar="SENTINEL_PASSWORD", default=None)
@click.option(
    "--patroni",
    "patroni_urls",
    envvar="VOTECTL_PATRONI_URLS",
    multiple=True,
    help="A Patroni REST URL (repeat for each member).",
)
@click.option(
    "--haproxy-stats", envvar="VOTECTL_HAPROXY_STATS", default=None, help="HAProxy stats page URL."
)
@click.option(
    "--haproxy-auth",
    envvar="VOTECTL_HAPROXY_AUTH",
    default=None,
    help="user:password for the stats page.",
)
@click.pass_context
def status(
    ctx: click.Context,
    as_json: bool,
    sentinels: str | None,
    master_name: str,
    redis_password: str | None,
    sentinel_password: str | None,
    patroni_urls: tuple[str, ...],
    haproxy_stats: str | None,
    haproxy_auth: str | None,
) -> None:
    """Show the Redis master and replicas, Sentinel quorum, Patroni roles and HAProxy's view."""
    if sentinels:
        from app.config import ConfigError, parse_hostports

        try:
            pairs = list(parse_hostports(sentinels, "--sentinels"))
        except ConfigError as exc:
            raise CliError(str(exc), ExitStatus.USAGE) from None
        user, _, password = (haproxy_auth or "").partition(":")
        target = status_mod.Target(
            sentinels=pairs,
            master_name=master_name,
            redis_password=redis_password,
            sentinel_password=sentinel_password,
            patroni_urls=list(patroni_urls),
            haproxy_stats_url=haproxy_stats,
            haproxy_stats_auth=(user, password) if haproxy_auth else None,
        )
    else:
        target = _local_target(_layout(ctx))
    result = status_mod.collect(target)
    click.echo(json.dumps(result, indent=2) if as_json else status_mod.render_text(result))
    healthy = (
        result["redis"]["master"]
        and result["sentinel"]["quorum_ok"]
        and result["postgres"]["leader"]
    )
    if not healthy:
        ctx.exit(ExitStatus.UNHEALTHY)


@cli.command("env")
@click.pass_context
def env_command(ctx: click.Context) -> None:
    """Print the apps' environment for the local stack (eval "$(votectl env)")."""
    layout = _layout(ctx)
    creds = credentials.load_or_create(layout.secrets_file)
    for key, value in render.app_env(layout, creds).items():
        click.echo(f"export {key}='{value}'")


@cli.group()
def db() -> None:
    """Provision the app's database: role, database, schema."""


@db.command("init")
@click.pass_context
def db_init(ctx: click.Context) -> None:
    """Create the app role and database, then migrate (local stack, or PG_SUPERUSER_URL +
    APP_DB_PASSWORD [+ APP_DB_ROLE, APP_DB_NAME, DATABASE_URL] for a deployment)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.migrate import upgrade
    from ops.db import ensure_role_and_database

    try:
        superuser_url = os.environ.get("PG_SUPERUSER_URL")
        if superuser_url:
            password = os.environ.get("APP_DB_PASSWORD")
            if not password:
                raise CliError("APP_DB_PASSWORD is not set", ExitStatus.USAGE)
            ensure_role_and_database(
                superuser_url,
                os.environ.get("APP_DB_ROLE", "vote"),
                password,
                os.environ.get("APP_DB_NAME", "votes"),
            )
            if os.environ.get("DATABASE_URL"):
                upgrade(os.environ["DATABASE_URL"])
        else:
            layout = _layout(ctx)
            stack_mod.provision_database(layout, credentials.load_or_create(layout.secrets_file))
    except SQLAlchemyError as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    click.echo("database ready")


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Run the schema migrations (DATABASE_URL, else the local stack's)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.migrate import upgrade

    url = os.environ.get("DATABASE_URL")
    if not url:
        layout = _layout(ctx)
        url = render.app_env(layout, credentials.load_or_create(layout.secrets_file))[
            "DATABASE_URL"
        ]
    try:
        upgrade(url)
    except SQLAlchemyError as exc:
        raise CliError(f"database error: {str(exc).splitlines()[0]}") from None
    click.echo("schema up to date")


def _backup_source(layout: Layout) -> tuple[backup_mod.BackupSource, Path]:
    """From BACKUP_DATABASE_URL + REDIS_SENTINELS (a deployment), else the local stack."""
    from redis.exceptions import RedisError
    from redis.sentinel import Sentinel

    from app.config import ConfigError, parse_hostports

    url = os.environ.get("BACKUP_DATABASE_URL")
    if url:
        try:
            sentinels = list(
                parse_hostports(os.environ.get("REDIS_SENTINELS", ""), "REDIS_SENTINELS")
            )
        except ConfigError as exc:
            raise CliError(str(exc), ExitStatus.USAGE) from None
        redis_password = os.environ.get("REDIS_PASSWORD")
        sentinel_password = os.environ.get("SENTINEL_PASSWORD")
        master_name = os.environ.get("REDIS_MASTER_NAME", "mymaster")
        dest = Path(os.environ.get("BACKUP_DIR", "backups"))
    else:
        creds = credentials.load_or_create(layout.secrets_file)
        url = render.superuser_url(layout, creds, database=render.APP_DB)
        sentinels = [(HOST, layout.sentinel_port(s)) for s in SENTINELS]
        redis_password, sentinel_password = creds["REDIS_PASSWORD"], creds["SENTINEL_PASSWORD"]
        master_name = layout.master_name
        dest = layout.path("backups")
    sentinel = Sentinel(
        sentinels, sentinel_kwargs={"password": sentinel_password, "socket_timeout": 1}
    )
    try:
        host, port = sentinel.discover_master(master_name)
    except RedisError as exc:  # MasterNotFoundError is one too
        raise CliError(f"cannot find the Redis master through Sentinel: {exc}") from None
    try:
        bindir = render.pg_bindir()
    except FileNotFoundError:
        bindir = None
    return backup_mod.BackupSource(url, host, int(port), redis_password, bindir), dest


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
@click.pass_context
def backup_command(ctx: click.Context, dest: str | None, every: float, keep: int) -> None:
    """Dump the votes database (pg_dump) and snapshot the Redis master (RDB)."""
    source, default_dest = _backup_source(_layout(ctx))
    root = Path(dest) if dest else default_dest
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # dumps hold password hashes and sessions
    if every > 0:
        from app.logs import configure_logging

        configure_logging()
        backup_mod.Scheduler(
            lambda: backup_mod.take(_backup_source(_layout(ctx))[0], root), every, keep, root
        ).run()
        return
    try:
        path = backup_mod.take(source, root)
    except backup_mod.BackupError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"backup written to {path}")


@cli.command("restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def restore_command(ctx: click.Context, backup_dir: str, yes: bool) -> None:
    """Replace the votes database with a backup's contents (Redis is left as it is)."""
    source, _ = _backup_source(_layout(ctx))
    if not yes:
        click.confirm(f"Replace the votes database with {backup_dir}?", abort=True)
    try:
        backup_mod.restore_database(source, Path(backup_dir))
    except backup_mod.BackupError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"database restored from {backup_dir}")


cli.add_command(drill_commands.drill)
cli.add_command(drill_commands.switchover)


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

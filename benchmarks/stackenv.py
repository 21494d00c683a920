"""The benchmarks' view of a stack: its environment (`votectl env`) and its web address."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
# The scripts run as `python benchmarks/x.py`: make `app`, `worker` and `ops` importable.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.config import Config, ConfigError  # noqa: E402
from ops.layout import Layout, LayoutError, default_base_port  # noqa: E402


def votectl_env(state_dir: str, base_port: int) -> dict[str, str]:
    """The apps' environment as `votectl --state-dir D --base-port N env` prints it."""
    votectl = Path(sys.executable).parent / "votectl"
    command = [str(votectl), "--state-dir", state_dir, "--base-port", str(base_port), "env"]
    try:
        out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise click.ClickException(f"votectl env failed: {exc}") from None
    env: dict[str, str] = {}
    for line in out.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


def stack_options(func: Callable) -> Callable:
    """--state-dir / --base-port: read a local stack's settings instead of the environment."""
    func = click.option(
        "--base-port",
        type=int,
        help="The local stack's base port (with --state-dir) [default: VOTECTL_BASE_PORT].",
    )(func)
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, exists=True),
        help="Read the stack's settings with `votectl --state-dir DIR env` instead of "
        'taking them from the environment (eval "$(votectl env)").',
    )(func)


def load_config(state_dir: str | None, base_port: int | None) -> tuple[Config, Layout | None]:
    """The stack's Config (and Layout when --state-dir is given), or a one-line usage error."""
    layout = None
    env: Mapping[str, str] = os.environ
    try:
        if state_dir:
            port = base_port if base_port is not None else default_base_port()
            layout = Layout(Path(state_dir).resolve(), port)
            env = {**os.environ, **votectl_env(state_dir, port)}
        return Config.from_env(env), layout
    except (ConfigError, LayoutError, ValueError) as exc:
        raise click.UsageError(
            f'{exc} (pass --state-dir/--base-port, or eval "$(votectl env)" first)'
        ) from None


def web_url(url: str | None, layout: Layout | None) -> str:
    """The web front's base URL: --url, else the local stack's HAProxy web port."""
    if url:
        return url.rstrip("/")
    layout = layout or Layout(Path("."), default_base_port())
    return layout.urls()["web"].rstrip("/")


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]

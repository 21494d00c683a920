"""The Python packages of the images, from the hashed lock files, and their wheelhouse.

    python3 docker/wheelhouse.py lock     re-derive docker/requirements/*.txt from requirements/
    python3 docker/wheelhouse.py wheels   download every locked file into docker/wheels/

The app image installs requirements/base.txt, the lock the security work keeps (pip-tools,
with hashes); the Patroni image the part of requirements/dev.txt that Patroni needs, and the
project itself is built with the locked setuptools and wheel: docker/requirements/patroni.txt
and build.txt, cut out of dev.txt with their hashes. Every install checks the hashes
(`pip install --require-hashes`). When docker/wheels/ holds the files, the images install
from there without an index: this is how they are built where containers cannot reach PyPI
(a TLS-inspecting proxy only the host trusts); with an empty wheelhouse they download the
same files from PyPI.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCKS = REPO / "requirements"
DERIVED = HERE / "requirements"
WHEELS = HERE / "wheels"
STAMP = WHEELS / ".built-from"
HEADER = "# Cut out of requirements/dev.txt by docker/wheelhouse.py lock; do not edit.\n"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def _blocks(lock: Path) -> dict[str, str]:
    """Each package's block of a pip-compile lock file (the pin and its hashes)."""
    blocks: dict[str, str] = {}
    current = None
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==", line):
            current = match.group(1).lower().replace("_", "-")
            blocks[current] = ""
        elif not line.startswith("    --hash") and not line.endswith("\\"):
            if not line.startswith("    "):
                current = None
            continue
        if current:
            blocks[current] += line + "\n"
    return blocks


def _closure(requirements: list[str]) -> set[str]:
    """The names of `requirements` and everything they pull in (for this interpreter)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _pip(
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            *requirements,
        )
        installs = json.loads(report.read_text())["install"]
    return {_name(i["metadata"]["name"]) for i in installs}


def lock() -> None:
    """Patroni's closure (the local extra's Patroni and the Postgres driver) and the build
    tools, with the versions and hashes of requirements/dev.txt."""
    dev = _blocks(LOCKS / "dev.txt")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = {name: block.split("==")[1].split()[0] for name, block in dev.items()}
    # The local extra's Patroni with its extras (etcd3), at the locked version.
    patroni = next(r for r in project["optional-dependencies"]["local"] if _name(r) == "patroni")
    extras = patroni[len("patroni") :].split(">")[0].split("<")[0].split("=")[0]
    wanted = [
        f"patroni{extras}=={version['patroni']}",
        f"psycopg2-binary=={version['psycopg2-binary']}",
    ]
    sets = {"patroni": _closure(wanted), "build": {"setuptools", "wheel"}}
    DERIVED.mkdir(exist_ok=True)
    for name, names in sets.items():
        text = HEADER + "".join(dev[n] for n in sorted(names))
        (DERIVED / f"{name}.txt").write_text(text)
        print(f"{name}: {len(names)} packages", file=sys.stderr)


def _files() -> list[Path]:
    return [LOCKS / "base.txt", DERIVED / "patroni.txt", DERIVED / "build.txt"]


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in _files():
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def wheels() -> None:
    """Download every locked file (wheels, or the sdists some packages only have), checking
    their hashes; nothing to do when the wheelhouse is current."""
    fingerprint = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    WHEELS.mkdir(exist_ok=True)
    for path in _files():
        _pip(
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--dest",
            str(WHEELS),
            "-r",
            str(path),
        )
    STAMP.write_text(fingerprint)
    print(f"wheelhouse: {len(list(WHEELS.iterdir())) - 1} files in {WHEELS}", file=sys.stderr)


def main(argv: list[str]) -> int:
    commands = {"lock": lock, "wheels": wheels}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    commands[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

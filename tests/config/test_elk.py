"""The log path: filebeat ships to the port logstash listens on, and the pipeline is well formed.

No Logstash is installed here (it runs only in compose), so its pipeline is checked for
structure, not run.
"""

from __future__ import annotations

import re

import yaml

from tests.config.conftest import REPO, load_compose

FILEBEAT = REPO / "elk" / "filebeat" / "filebeat.yml"
PIPELINES = sorted((REPO / "elk" / "logstash" / "pipeline").glob("*.conf"))


def code_of(text: str) -> str:
    """The pipeline without comments, regex literals and strings (they may hold braces)."""
    text = re.sub(r"=~\s*/(?:\\.|[^/\\])*/", "=~ //", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_filebeat_ships_to_the_port_logstash_listens_on() -> None:
    config = yaml.safe_load(FILEBEAT.read_text())
    [host] = config["output.logstash"]["hosts"]
    service, port = host.rsplit(":", 1)
    assert service in load_compose()["services"]
    beats_ports = {
        m for p in PIPELINES for m in re.findall(r"beats\s*\{[^}]*port\s*=>\s*(\d+)", p.read_text())
    }
    assert beats_ports == {port}


def test_pipeline_sections_and_braces() -> None:
    assert PIPELINES
    for path in PIPELINES:
        code = code_of(path.read_text())
        depth = 0
        for char in code:
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, f"{path.name}: unbalanced '}}'"
        assert depth == 0, f"{path.name}: unbalanced '{{'"
        for section in ("input", "filter", "output"):
            assert re.search(rf"^{section}\s*\{{", code, re.MULTILINE), f"{path.name}: {section}"


def test_compose_mounts_the_pipeline_and_filebeat_config() -> None:
    services = load_compose()["services"]
    assert (
        "./elk/logstash/pipeline:/usr/share/logstash/pipeline:ro" in services["logstash"]["volumes"]
    )
    assert any(
        v.startswith("./elk/filebeat/filebeat.yml:") for v in services["filebeat"]["volumes"]
    )

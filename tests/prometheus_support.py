"""A real Prometheus server for tests, and the dashboard's panel queries as Grafana sends them.

``PrometheusServer`` runs the ``prometheus`` binary of the Debian package that also ships promtool
(``make tools`` installs it) on a free loopback port, with a short scrape and evaluation interval,
scraping the targets written to a file-based service discovery file, and loading alert rules.
``panel_queries`` reads every panel query of the Grafana dashboard and substitutes its template
variables the way Grafana would.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
DASHBOARD = REPOSITORY / "helm/trengo-processor/dashboards/trengo-processor.json"
ALERT_RULES = REPOSITORY / "helm/trengo-processor/rules/alerts.yaml"
JOB = "trengo-processor"
SCRAPE_SECONDS = 1
# Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval); a 1 s
# step makes it 4 x the scrape interval.
RATE_INTERVAL = f"{4 * SCRAPE_SECONDS}s"
_START_TIMEOUT_SECONDS = 30.0
_HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PanelQuery:
    """One query of one dashboard panel, with its template variables still in place."""

    panel: str
    panel_type: str
    legend: str
    expr: str

    def for_namespace(self, namespace: str = ".*") -> str:
        """The PromQL Grafana sends with ``$namespace`` set (All: ``.*``) and ``$pod`` All."""
        variables = {"namespace": namespace, "pod": ".*", "__rate_interval": RATE_INTERVAL}
        return re.sub(
            r"\$\{?(\w+)\}?",
            lambda match: variables[match.group(1)],
            self.expr,
        )


def panel_queries(dashboard: Path = DASHBOARD) -> list[PanelQuery]:
    """Every query of every panel (rows' nested panels included)."""
    document = json.loads(dashboard.read_text(encoding="utf-8"))
    return [
        PanelQuery(panel["title"], panel["type"], target.get("legendFormat", ""), target["expr"])
        for panel in _panels(document["panels"])
        for target in panel.get("targets", [])
    ]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def rules_with_short_for(rules: Path, for_durations: Mapping[str, str]) -> str:
    """The rule file with each alert's ``for:`` replaced; expressions and labels unchanged."""
    document = yaml.safe_load(rules.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_durations[rule["alert"]]
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (time, value) points, NaN left out."""

    labels: dict[str, str]
    points: list[tuple[float, float]]

    @property
    def last(self) -> float:
        """The last value (Grafana's "last not null")."""
        return self.points[-1][1]


class PrometheusServer:
    """``prometheus`` on a free loopback port; ``set_targets`` changes what it scrapes."""

    def __init__(self, rule_text: str) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="prometheus-")
        self._directory = Path(self._workdir.name)
        self._targets_path = self._directory / "targets.json"
        self._targets: dict[str, str] = {}
        self._write_targets()
        (self._directory / "alerts.yaml").write_text(rule_text, encoding="utf-8")
        self.port = _free_port()
        self.log_path = self._directory / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        executable = shutil.which("prometheus")
        assert executable is not None, "prometheus not found on PATH: run `make tools`"
        config = self._directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()), encoding="utf-8")
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    executable,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._workdir.cleanup()

    def set_target(self, namespace: str, address: str) -> None:
        """Scrape ``address`` as the one pod of ``namespace`` (as a ServiceMonitor labels it)."""
        self._targets[namespace] = address
        self._write_targets()

    def log(self) -> str:
        """The server's own output."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str, **params: str | float) -> Any:
        """GET ``/api/v1/<path>``: the ``data`` of a successful answer."""
        query = urllib.parse.urlencode({key: str(value) for key, value in params.items()})
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_SECONDS) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: {error.read().decode()}") from error
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, promql: str, start: float, end: float) -> list[Series]:
        """A range query with a ``SCRAPE_SECONDS`` step, as a Grafana panel draws it."""
        data = self.api("query_range", query=promql, start=start, end=end, step=SCRAPE_SECONDS)
        return [
            Series(
                item["metric"],
                [(float(t), float(v)) for t, v in item["values"] if not math.isnan(float(v))],
            )
            for item in data["result"]
        ]

    def active_alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing now, with their labels and state."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def _config(self) -> dict[str, Any]:
        interval = f"{SCRAPE_SECONDS}s"
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(self._directory / "alerts.yaml")],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {"files": [str(self._targets_path)], "refresh_interval": interval}
                    ],
                }
            ],
        }

    def _write_targets(self) -> None:
        groups = [
            {"targets": [address], "labels": {"namespace": namespace, "pod": f"{namespace}-0"}}
            for namespace, address in self._targets.items()
        ]
        partial = self._targets_path.with_suffix(".tmp")
        partial.write_text(json.dumps(groups), encoding="utf-8")
        partial.replace(self._targets_path)  # atomic: never a half-written file

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        url = f"http://127.0.0.1:{self.port}/-/ready"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {_START_TIMEOUT_SECONDS} s:\n{self.log()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

"""A real Prometheus (Debian's `prometheus` package) on loopback scrapes a real replica of the stdlib-http-service
golden path, started by the local runtime; Runway's metrics sources and a PromQL SLO read through it."""

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from deployments.runtimes import local
from deployments.runtimes.base import Context
from monitoring import services, sources
from monitoring.models import SLO, SliState
from tests.deployments.stdlib import stdlib_repo_make

pytestmark = pytest.mark.django_db
SERVICE = "payments-api"  # the `world` fixture's service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def replica(settings, tmp_path: Path) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """One replica of the golden path's release 1.0.0 on the local runtime; its port. Stopped afterwards."""
    repo = stdlib_repo_make(name=SERVICE, root=tmp_path / "stdlib")
    settings.GIT_ROOT = repo.git_root
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    runtime = local.LocalRuntime()
    context = Context(
        deployment_id=1,
        service=SERVICE,
        environment="staging",
        version="1.0.0",
        commit_sha=repo.tags["1.0.0"],
        repository=str(repo.bare),
        config={"health_timeout_seconds": 10},
    )
    try:
        runtime.prepare(context)
        runtime.scale(context, replicas=1)
        (row,) = runtime.endpoints(SERVICE, "staging")
        yield int(row["port"])
    finally:
        local.supervisord_shutdown()


@pytest.fixture
def prometheus(replica: int, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping the replica every second; its base URL once it has scraped the replica."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed (apt-get install prometheus; .ci/run installs it)"
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(  # YAML is a superset of JSON
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "replicas",
                        "static_configs": [{"targets": [f"127.0.0.1:{replica}"], "labels": {"service": SERVICE}}],
                    }
                ],
            }
        )
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="replicas"}'}, timeout=2).json()
                if answer["data"]["result"] and answer["data"]["result"][0]["value"][1] == "1":
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, "Prometheus never scraped the replica"
            assert process.poll() is None, "Prometheus exited"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _traffic(port: int, ok: int, missing: int) -> None:
    for _ in range(ok):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    for _ in range(missing):
        assert httpx.get(f"http://127.0.0.1:{port}/no-such-page", timeout=5).status_code == 404


# The test's own requests: Prometheus's scrapes of /metrics and the runtime's /healthz probes are counted too.
TRAFFIC = 'path!="/metrics",path!="/healthz"'


def _scraped_total(url: str, at_least: float) -> None:
    """Wait until Prometheus has scraped `at_least` of the test's requests (it scrapes every second)."""
    deadline = time.monotonic() + 15
    while (sources.PrometheusSource(url).instant(f"sum(http_requests_total{{{TRAFFIC}}})") or 0) < at_least:
        assert time.monotonic() < deadline, "Prometheus did not see the requests"
        time.sleep(0.2)


def test_sources_and_a_promql_slo_read_a_real_replica_through_a_real_prometheus(world, settings, replica, prometheus):
    _traffic(replica, ok=6, missing=2)
    # The replica's own /metrics, read directly (what a worker scrapes), and through Prometheus: the same counts.
    scrape = sources.ScrapeSource(f"http://127.0.0.1:{replica}/metrics")
    assert scrape.instant('http_requests_total{path="/"}') == 6
    assert scrape.instant('http_requests_total{status=~"4.."}') == 2
    with pytest.raises(sources.SourceUnavailable, match="need Prometheus"):
        scrape.instant("sum(rate(http_requests_total[5m]))")
    _scraped_total(prometheus, 8)
    through = sources.PrometheusSource(prometheus)
    assert through.instant('sum(http_requests_total{service="payments-api",path="/",status="200"})') == 6

    settings.PROMETHEUS_URL = prometheus
    document = {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "not-found-free"},
        "spec": {
            "service": SERVICE,
            "indicator": {
                "metadata": {"name": "requests"},
                "spec": {
                    "ratioMetric": {
                        "counter": True,
                        "good": {
                            "metricSource": {
                                "type": "Prometheus",
                                "spec": {"query": f'sum(http_requests_total{{{TRAFFIC},status!~"4..|5.."}})'},
                            }
                        },
                        "total": {
                            "metricSource": {
                                "type": "Prometheus",
                                "spec": {"query": f"sum(http_requests_total{{{TRAFFIC}}})"},
                            }
                        },
                    }
                },
            },
            "objectives": [{"target": 0.9}],
        },
    }
    slo = services.slo_create(user=world.owner, service=world.service, document=document)
    start = timezone.now()
    services.slo_evaluate(slo_id=slo.pk, now=start)  # the first reading of the counters
    _traffic(replica, ok=3, missing=1)
    _scraped_total(prometheus, 12)
    sample = services.slo_evaluate(slo_id=slo.pk, now=start + timedelta(minutes=1))
    assert sample is not None and (sample.good, sample.total) == (3, 4)
    assert SLO.objects.get(pk=slo.pk).sli_state == SliState.OK

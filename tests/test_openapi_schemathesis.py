"""The running API against its own OpenAPI document, with generated requests.

schemathesis reads ``/openapi.json`` from a live ``ccd serve --demo`` (a process of
its own: the checks make blocking HTTP calls) and fires requests generated from the
document at every operation, valid and not, with an admin token. Every response must
be documented (status code, JSON body), and none may be a server error: bad bodies,
bad paths and bad query strings get a 4xx with a reason.

One check is left out: "schema-valid data is accepted". A schema cannot say what makes
a phone number valid, a queue known or a time zone real, and the API rightly refuses
such requests with a 400 naming the field.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from redis_server import free_port
from schemathesis.specs.openapi.checks import positive_data_acceptance

TOKEN = "schemathesis-admin-token-01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "ccd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccd",
                "serve",
                "--demo",
                "--speed",
                "5",
                "--listen",
                f"127.0.0.1:{port}",
                "--quiet",
            ],
            stdout=out,
            stderr=out,
            env={**os.environ, "CCD_ADMIN_TOKEN": TOKEN},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, Path(log).read_text()[-2000:]
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


@pytest.fixture(scope="module")
def api(server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


def test_every_operation_answers_as_documented(api: schemathesis.BaseSchema, server: str) -> None:
    # schemathesis' own pytest plugin does not support this pytest yet: the cases of
    # each operation are drawn with hypothesis directly (the same strategies).
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=server, headers=headers, excluded_checks=[positive_data_acceptance]
            )

        check()
    assert operations >= 25

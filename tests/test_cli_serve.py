"""``ccd serve`` and ``ccd simulate-pbx`` as a user runs them: real processes, real
sockets, signals. Bad input ends with exit 2 and one line on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ccd.cli import main
from sim.ami_server import SimulatedAsterisk

CCD = [sys.executable, "-m", "ccd"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_serve_needs_a_config_or_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ccd serve: error: ccd serve: give either --config FILE or --demo"]


def test_serve_reports_a_bad_config_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[queues]]\nname = "q"\nwrap_up = "soon"\n', encoding="utf-8")
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "c.toml: queues[0].wrap_up" in err[0]


def test_serve_demo_runs_serves_metrics_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CCD, "serve", "--demo", "--speed", "20", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status, _ = get(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        # Calls flow: wait until the demo's callers were offered to agents.
        offered = 0.0
        while time.monotonic() < deadline and offered < 2:
            _, text = get(f"http://127.0.0.1:{port}/metrics")
            offered = sum(
                float(v) for v in re.findall(r"^ccd_calls_answered_total\{[^}]*\} (\S+)$", text, re.M)
            )
            time.sleep(0.2)
        assert offered >= 2
        code, body = get(f"http://127.0.0.1:{port}/api/agents")
        assert code == 200 and len(json.loads(body)["agents"]) == 20
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "ccd serve: http://127.0.0.1" in out and "stopping after" in out
    assert "Traceback" not in err


async def test_serve_refuses_to_retry_bad_credentials(tmp_path: Path) -> None:
    pbx = SimulatedAsterisk(None, secret="the-right-one", auth_delay_s=0.01, workload=False)
    await pbx.start()
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            f'[http]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[ami]\nport = {pbx.port}\nsecret_env = "CCD_TEST_AMI_SECRET"\n'
            '[[queues]]\nname = "q"\n',
            encoding="utf-8",
        )
        proc = await asyncio.create_subprocess_exec(
            *CCD,
            "serve",
            "--config",
            str(cfg),
            "--quiet",
            env={**os.environ, "CCD_TEST_AMI_SECRET": "a-wrong-secret"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await pbx.stop()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    refused = f"ccd serve: error: ami 127.0.0.1:{pbx.port}: Asterisk refused the credentials of user 'ccd'"
    assert lines == [refused]
    assert "a-wrong-secret" not in out.decode() + err.decode()


async def test_simulate_pbx_speaks_ami_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *CCD,
        "simulate-pbx",
        "--listen",
        f"127.0.0.1:{port}",
        env={**os.environ, "CCD_AMI_SECRET": "pbx-secret-value", "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert f"AMI on 127.0.0.1:{port}" in line and "pbx-secret-value" not in line
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"Asterisk Call Manager/")
        writer.write(b"Action: Login\r\nUsername: ccd\r\nSecret: pbx-secret-value\r\nActionID: 1\r\n\r\n")
        writer.write(b"Action: Ping\r\nActionID: 2\r\n\r\n")
        await writer.drain()
        seen = b""
        while b"Ping: Pong" not in seen:
            seen += await asyncio.wait_for(reader.read(4096), 10)
        assert b"Authentication accepted" in seen
        writer.close()
        await writer.wait_closed()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0, err
    assert b"stopping" in out


def test_serve_says_when_the_store_is_unreachable() -> None:
    proc = subprocess.run(
        [
            *CCD,
            "serve",
            "--demo",
            "--store",
            f"redis://127.0.0.1:{free_port()}/0",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--for",
            "20s",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "ccd serve: error: store: Redis" in proc.stderr and "Traceback" not in proc.stderr

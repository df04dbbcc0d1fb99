"""Benchmark: lead-list import, rows per second, into the memory and Redis stores.

Run with ``python bench/import.py [--rows 1000000] [--no-redis]``.

The list is a CSV of ``--rows`` distinct US numbers in mixed formats (``(212) 555-…``,
``212.555.…``, ``+1 212 …``) with a first name, a time zone on every tenth row and a
priority on every fifth, plus 0.5 % bad rows (a letter in the number, a bad zone).
Measured, each on a fresh campaign, through the service's own path
(:meth:`ccd.outbound.OutboundManager.import_leads`: spool, read, validate, merge,
store atomically, load into the hopper):

* ``read``: :func:`dialer.imports.read_leads` alone;
* ``memory``: the whole import into the embedded store;
* ``redis``: the whole import into a private ``redis-server`` (started here, AOF off
  as a cache would be; with ``appendfsync always`` the transaction at the end costs
  one fsync, not one per row).

Reference, run in the same process: the irreducible work per row, a bare loop of
``csv.reader`` + ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number``
(E.164) with no zone, no merge and no store. The ratio says what the rest of the
import costs on top of validating numbers at all.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import phonenumbers  # noqa: E402

from ccd.kv import Kv, MemoryKv, RedisKv  # noqa: E402
from ccd.outbound import OutboundManager  # noqa: E402
from ccd.store import Store  # noqa: E402
from dialer.imports import read_leads, text_lines  # noqa: E402

AREAS = (212, 213, 312, 415, 617, 718, 202, 305, 404, 503, 602, 702, 206, 303, 713, 214)
SPEC = {"name": "bench", "caller_id": "+12025550100", "queue": "sales"}


def write_csv(path: Path, rows: int) -> int:
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["phone", "first_name", "timezone", "priority"])
        for i in range(rows):
            area = AREAS[i % len(AREAS)]
            exch = 200 + (i // len(AREAS)) // 10000 % 800
            line = (i // len(AREAS)) % 10000
            style = i % 3
            if style == 0:
                number = f"({area}) {exch}-{line:04d}"
            elif style == 1:
                number = f"{area}.{exch}.{line:04d}"
            else:
                number = f"+1 {area} {exch} {line:04d}"
            zone = "America/New_York" if i % 10 == 0 else ""
            if i % 200 == 7:
                number, bad = number[:-1] + "x", bad + 1
            elif i % 200 == 11:
                zone, bad = "Mars/Olympus", bad + 1
            w.writerow([number, f"p{i}", zone, str(i % 7) if i % 5 == 0 else ""])
    return bad


def reference(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    ok = 0
    with path.open(encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            try:
                n = phonenumbers.parse(row[0], "US")
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(n):
                phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
                ok += 1
    return ok, time.perf_counter() - t0


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(1 << 16):
            yield block


async def import_into(
    kv: Kv, path: Path, workers: int | None = None
) -> tuple[dict[str, object], float, float]:
    """The import's wall time, and the longest the event loop was kept from running
    meanwhile (the live service's AMI events wait that long)."""
    manager = OutboundManager(Store(kv), now=time.time)
    if workers is not None:
        manager.import_workers = workers
    await manager.load()
    await manager.create(SPEC, "bench")
    stall = 0.0

    async def ticker() -> None:
        nonlocal stall
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            stall = max(stall, time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    report = await manager.import_leads("bench", chunks(path), source=path.name, who="bench")
    elapsed = time.perf_counter() - t0
    tick.cancel()
    await manager.store.close()
    return report, elapsed, stall


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""]
    proc = subprocess.Popen(
        [*args, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument(
        "--workers", type=int, help="validation processes of the store imports (default: the service's)"
    )
    args = ap.parse_args()
    print(f"# bench/import.py  python {platform.python_version()}  {platform.machine()}  rows={args.rows:,}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        bad = write_csv(path, args.rows)
        size = path.stat().st_size
        print(f"list: {args.rows:,} rows ({bad:,} bad), {size / 2**20:.1f} MiB")

        ok, t_ref = reference(path)
        print(f"reference (csv + phonenumbers parse, valid, format): {ok:,} valid in {t_ref:.1f} s", end="")
        print(f" = {args.rows / t_ref:,.0f} rows/s")

        for workers in sorted({1, os.cpu_count() or 1}):
            t0 = time.perf_counter()
            with path.open("rb") as f:
                lines = text_lines(iter(lambda: f.read(1 << 16), b""), source="leads.csv")
                read = read_leads(lines, source="leads.csv", workers=workers)
            t_read = time.perf_counter() - t0
            rate = args.rows / t_read
            n_leads, n_bad = len(read.leads), len(read.problems)
            print(f"read_leads, {workers} process(es): {n_leads:,} leads, {n_bad:,} problems", end="")
            print(f" in {t_read:.1f} s = {rate:,.0f} rows/s  (x{t_ref / t_read:.2f} the reference)")
            del read

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report, t_mem, stall = asyncio.run(import_into(MemoryKv(), path, args.workers))
        print(f"import -> memory: {report['imported']:,} imported, {report['rejected']:,} rejected", end="")
        print(f" in {t_mem:.1f} s = {args.rows / t_mem:,.0f} rows/s  (x{t_ref / t_mem:.2f} the reference)")
        print(f"  longest event-loop stall during it: {stall * 1000:.0f} ms")
        if not args.no_redis:
            started = start_redis(Path(tmp))
            if started is None:
                print("import -> redis: skipped (no redis-server)")
            else:
                proc, port = started
                try:
                    url = f"redis://127.0.0.1:{port}/0"
                    report, t_redis, stall = asyncio.run(import_into(RedisKv(url), path, args.workers))
                    print(
                        f"import -> redis: {report['imported']:,} imported in {t_redis:.1f} s"
                        f" = {args.rows / t_redis:,.0f} rows/s  (x{t_ref / t_redis:.2f} the reference)"
                    )
                    print(f"  longest event-loop stall during it: {stall * 1000:.0f} ms")
                finally:
                    proc.kill()
                    proc.wait()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS {rss / 1024:.0f} MiB (before the store imports: {rss0 / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()

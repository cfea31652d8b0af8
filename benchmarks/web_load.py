"""Public endpoints under load: POST /subscribe and one-click POST /u/{token} at a fixed rate on SQLite (WAL).

    python benchmarks/web_load.py [--rate 200] [--seconds 30] [--subscribers 10000] [--connections 100]
                                  [--workers 2] [--timeout 10] [--dir DIR]

Three parts: this process (set-up, the aiosmtpd capture server that receives the confirmation mails,
the report), the server (`python -m digest serve --workers N`, what production runs: N uvicorn worker
processes plus the mailer process that sends the queued confirmation mails), and the load generator (its own process: --connections keep-alive HTTP/1.1 connections on asyncio; a lean raw
client by default, httpx with --client httpx). The generator is open-loop:
request i is released at t0 + i/rate whether or not earlier ones have come back, and its latency is
counted from that planned moment, so a server that falls behind shows up as latency (its backlog
included) instead of silently lowering the rate.

Two phases in one run, each --seconds long at --rate requests/s:
  1. baseline: GET /healthz only (a trivial endpoint through the same server stack);
  2. load: POST /subscribe (a new address each time: rate-limit counters, subscriber, pending subscription,
     consent row and an outbox row in one transaction; the mailer sends the confirmation mail over SMTP) alternating with POST /u/{token} with
     `List-Unsubscribe=One-Click` for pre-imported confirmed subscribers (each token used once).
The per-IP and per-address subscribe limits are raised in the config (web.subscribe_per_ip_hour,
web.subscribe_per_address_day); with the defaults (10 per IP per hour) every subscribe from loopback
after the tenth would be a 429. Errors are non-2xx answers and exceptions (a request not answered
within --timeout seconds of being sent counts as an error; its wait still counts in the percentiles).

Columns: sent, errors, rate/s (achieved send rate), served/s (answers per second until the last one came
back: below rate/s means the server fell behind), p50/p95/p99/max latency in ms, and "late p99": how late
the generator itself released requests (large values mean the generator, not the server, was starved).
Then the target (p99 < 100 ms, 0 errors) per endpoint, the server's CPU share per phase, the
confirmation mails received, the subscriptions by status afterwards, and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

P99_TARGET_MS = 100.0
WARMUP = 20  # requests of each kind before a phase, not counted


# ---------------------------------------------------------------- set-up (this process)

def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, smtp_port: int, web_port: int) -> Path:
    (folder / "secret.key").write_text("bench-secret-key-that-is-long-enough-0123456789\n")
    config = folder / "digest.toml"
    config.write_text(textwrap.dedent(f"""
        [database]
        url = "sqlite:///digest.db"

        [web]
        base_url = "http://127.0.0.1:{web_port}"
        secret_key_file = "secret.key"
        port = {web_port}
        # A load test from one address: the limiter would otherwise answer 429 after 10 per hour.
        subscribe_per_ip_hour = 1000000000
        subscribe_per_address_day = 1000000000

        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}

        [[lists]]
        slug = "daily"
        name = "Bench Daily"
        from = "Bench Daily <news@digest.example>"
        address = "1 Bench Street"
        """), encoding="utf-8")
    return config


def seed(config: Path, count: int) -> list[str]:
    """Import `count` confirmed subscribers with import_csv; return one one-click unsubscribe token each."""
    from sqlalchemy import select

    from digest.audience.subscribers import import_csv
    from digest.audience.tokens import Signer
    from digest.config import load_settings
    from digest.db import audience as queries
    from digest.db.models import Subscription
    from digest.db.session import open_database

    settings = load_settings(config)
    database = open_database(settings.database.url)
    lines = ["email,name,timezone\n", *(f"seed{i}@load{i % 50}.example,Seed {i},UTC\n" for i in range(count))]
    with database.session() as session:
        mailing_list = queries.sync_lists(session, settings.lists)["daily"]
        report = import_csv(session, mailing_list, lines, confirmed=True)
        if report.errors:
            raise SystemExit(f"seeding failed: {report.errors[:3]}")
        ids = session.execute(select(Subscription.subscriber_id, Subscription.list_id)
                              .where(Subscription.list_id == mailing_list.id).order_by(Subscription.subscriber_id)).all()
    database.dispose()
    signer = Signer(settings.secret_key())
    return [signer.make("unsubscribe", subscriber_id, list_id) for subscriber_id, list_id in ids]


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and all its descendants (Linux /proc): the server is several processes."""
    stats = {int(p.name): st for p in Path("/proc").iterdir() if p.name.isdigit() and (st := _stat(int(p.name)))}
    if pid not in stats:
        return None
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return sum(stats[p][1] for p in family)


def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not answer /healthz within 60 s")


# ---------------------------------------------------------------- load generator (its own process)

class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the generator's CPU per request is a fraction of
    httpx's, which matters when the generator and the server share two cores. It speaks just enough HTTP for
    this server: a request with an urlencoded form, an answer with Content-Length or chunked, keep-alive.
    A broken or closed connection is reopened for the next request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, form: dict[str, str] | None) -> int:
        from urllib.parse import urlencode

        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = urlencode(form).encode() if form is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if form is not None:
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + body)
            status, headers = await self._head()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while size := int((await self.reader.readline()).split(b";")[0], 16):
                    await self.reader.readexactly(size + 2)
                await self.reader.readline()
            else:
                await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class HttpxConnection:
    """The same interface over an httpx.AsyncClient with one connection (--client httpx)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def request(self, method: str, path: str, form: dict[str, str] | None) -> int:
        response = await (self.client.get(path) if form is None else self.client.post(path, data=form))
        return int(response.status_code)


async def run_phase(clients: list[Any], plan: list[tuple[str, str, dict[str, str] | None]], rate: float,
                    timeout: float) -> list[dict[str, Any]]:
    """Release plan[i] = (kind, path, form) at t0 + i/rate; one record per request (gives up after `timeout` s).

    Each client is one keep-alive connection served by one worker, so the number of requests in flight is
    bounded by the number of connections; a request that finds every connection busy waits in the queue,
    and that wait counts in its latency (measured from the planned moment). One shared httpx pool with
    hundreds of requests in flight spends its CPU on pool bookkeeping instead (the generator, not the
    server, would then set the pace).
    """
    results: list[dict[str, Any]] = [{} for _ in plan]
    queue: asyncio.Queue[tuple[int, float, float] | None] = asyncio.Queue()

    async def worker(client: Any) -> None:
        while (item := await queue.get()) is not None:
            i, planned, released = item
            kind, path, form = plan[i]
            record: dict[str, Any] = {"kind": kind, "planned": planned, "lag": released - planned}
            try:
                request = client.request("GET" if form is None else "POST", path, form)
                record["status"] = await asyncio.wait_for(request, timeout)
            except Exception as exc:  # a timeout or a refused connection is an error, not a crash
                record["status"] = None
                record["error"] = exc.__class__.__name__
            record["done"] = time.perf_counter()
            record["latency"] = record["done"] - planned
            results[i] = record

    workers = [asyncio.create_task(worker(client)) for client in clients]
    t0 = time.perf_counter() + 0.05
    for i in range(len(plan)):
        planned = t0 + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, planned, time.perf_counter()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    for record in results:
        record["planned"] -= t0
        record["done"] -= t0
    return results


def generator(url: str, rate: float, seconds: float, timeout: float, connections: int, tokens: list[str], run_id: str,
              out: str, client_kind: str = "raw") -> None:
    import httpx

    count = int(rate * seconds)

    def subscribe(n: str) -> tuple[str, str, dict[str, str]]:
        return ("subscribe", "/subscribe", {"email": f"load-{run_id}-{n}@bench.example", "list": "daily"})

    def unsubscribe(token: str) -> tuple[str, str, dict[str, str]]:
        return ("unsubscribe", f"/u/{token}", {"List-Unsubscribe": "One-Click"})

    spare = iter(tokens)
    warm_mixed = [p for i in range(WARMUP) for p in (subscribe(f"w{i}"), unsubscribe(next(spare)))]
    load = [subscribe(str(i)) if i % 2 == 0 else unsubscribe(next(spare)) for i in range(count)]
    health: list[tuple[str, str, dict[str, str] | None]] = [("healthz", "/healthz", None)] * count

    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with contextlib.AsyncExitStack() as stack:
            if client_kind == "httpx":
                clients: list[Any] = [HttpxConnection(await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout))) for _ in range(connections)]
            else:
                host, port = url.removeprefix("http://").rsplit(":", 1)
                clients = [RawConnection(host, int(port)) for _ in range(connections)]
                stack.callback(lambda: [c.close() for c in clients])
            phases: dict[str, Any] = {}
            windows: dict[str, tuple[float, float]] = {}
            await run_phase(clients, [("healthz", "/healthz", None)] * WARMUP, rate, timeout)
            start = time.time()
            phases["baseline"] = await run_phase(clients, health, rate, timeout)
            windows["baseline"] = (start, time.time())
            progress(f"baseline done in {windows['baseline'][1] - start:.1f} s")
            await asyncio.sleep(1)
            await run_phase(clients, warm_mixed, rate, timeout)
            start = time.time()
            phases["load"] = await run_phase(clients, load, rate, timeout)
            windows["load"] = (start, time.time())
            progress(f"load done in {windows['load'][1] - start:.1f} s")
            return {"phases": phases, "windows": windows}

    cpu_before = time.process_time()
    result = asyncio.run(main())
    result["cpu_seconds"] = time.process_time() - cpu_before
    Path(out).write_text(json.dumps(result))


# ---------------------------------------------------------------- report

def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))  # nearest rank
    return sorted_values[rank]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r["status"] is not None and 200 <= r["status"] < 300]
    errors: dict[str, int] = {}
    for r in records:
        if r not in ok:
            key = r.get("error") or str(r["status"])
            errors[key] = errors.get(key, 0) + 1
    latencies = sorted(r["latency"] * 1000 for r in records)  # failures too: a timeout counts as its wait
    sent_window = max(r["planned"] for r in records) - min(r["planned"] for r in records)
    lags = sorted(r["lag"] * 1000 for r in records)
    return {
        "sent": len(records), "ok": len(ok), "errors": sum(errors.values()), "error_kinds": errors,
        "rate": round((len(records) - 1) / sent_window, 1) if sent_window > 0 else float("nan"),
        "completed_per_s": round(len(records) / max(r["done"] for r in records), 1),
        "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1), "max_ms": round(latencies[-1], 1) if latencies else float("nan"),
        "send_lag_p99_ms": round(percentile(lags, 99), 1), "send_lag_max_ms": round(lags[-1], 1),
    }


def database_counts(config: Path) -> dict[str, int]:
    from sqlalchemy import func, select

    from digest.config import load_settings
    from digest.db.models import Subscription
    from digest.db.session import open_database

    database = open_database(load_settings(config).database.url)
    with database.session() as session:
        rows = session.execute(select(Subscription.status, func.count()).group_by(Subscription.status)).all()
    database.dispose()
    return {str(status.value if hasattr(status, "value") else status): n for status, n in rows}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second in each phase (default 200)")
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase (default 30)")
    parser.add_argument("--subscribers", type=int, default=10_000, help="confirmed subscribers imported first")
    parser.add_argument("--timeout", type=float, default=10, help="seconds before a request counts as an error")
    parser.add_argument("--connections", type=int, default=100, help="keep-alive connections (most requests in flight)")
    parser.add_argument("--workers", type=int, default=1,
                        help="web server processes (digest serve --workers); on SQLite one process with its group-"
                             "committing writer thread does best, a second one only takes turns at the write lock")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="load generator's HTTP client: raw keep-alive HTTP/1.1 on asyncio streams (default, "
                             "lightest) or httpx (heavier: more of the 2 cores go to the generator)")
    parser.add_argument("--dir", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    needed = int(args.rate * args.seconds) // 2 + WARMUP + 1
    if args.subscribers < needed:
        parser.error(f"--subscribers must be at least {needed} (one unsubscribe token per request)")

    from digest.demo.capture import CaptureServer

    with tempfile.TemporaryDirectory() as tmp, CaptureServer() as smtp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = write_config(folder, smtp.port, port)
        started = time.perf_counter()
        tokens = seed(config, args.subscribers)
        print(f"seeded {len(tokens)} confirmed subscribers in {time.perf_counter() - started:.1f} s; "
              f"load average before: {loadavg()} on {os.cpu_count()} CPUs", flush=True)

        log = folder / "server.log"
        with log.open("wb") as log_file:
            server = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "serve",
                                       "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)],
                                      stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, server, log)
            progress(f"server up at {url} (pid {server.pid}); baseline, then load, {args.seconds:g} s each")
            out = folder / "results.json"
            samples: list[tuple[float, float]] = []  # (wall clock, server CPU seconds)
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    cpu = cpu_seconds(server.pid)
                    if cpu is not None:
                        samples.append((time.time(), cpu))
                    stop.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load = mp.get_context("spawn").Process(
                target=generator,
                args=(url, args.rate, args.seconds, args.timeout, args.connections, tokens, uuid.uuid4().hex[:8], str(out),
                      args.client))
            load.start()
            load.join()
            stop.set()
            sampler.join()
            if load.exitcode != 0 or not out.exists():
                raise SystemExit(f"load generator failed (exit {load.exitcode})")
            # The mailer sends confirmation mails from the outbox; give the last ones a moment to arrive.
            subscribes = (int(args.rate * args.seconds) + 1) // 2 + WARMUP
            deadline = time.monotonic() + 30
            while len(smtp.messages) < subscribes and time.monotonic() < deadline:
                time.sleep(0.2)
            confirmations = len(smtp.messages)
            progress(f"{confirmations} confirmation mails arrived; stopping the server")
        finally:
            server.send_signal(signal.SIGINT)  # uvicorn's clean shutdown; it stops its workers and the mailer
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:  # still working through queued mails: stop it hard
                server.kill()
                server.wait()
        data = json.loads(out.read_text())
        phases = data["phases"]
        server_log = log.read_text(errors="replace")
        counts = database_counts(config)

    def server_cpu(window: list[float]) -> float | None:
        inside = [(t, c) for t, c in samples if window[0] <= t <= window[1]]
        if len(inside) < 2:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    rows = {
        "GET /healthz (baseline)": summarise(phases["baseline"]),
        "POST /subscribe": summarise([r for r in phases["load"] if r["kind"] == "subscribe"]),
        "POST /u/{token} one-click": summarise([r for r in phases["load"] if r["kind"] == "unsubscribe"]),
        "load phase, both": summarise(phases["load"]),
    }
    cpu = {phase: server_cpu(window) for phase, window in data["windows"].items()}
    print(f"\n{args.rate:g} req/s per phase for {args.seconds:g} s each; latency in ms from the planned send time")
    print(f"{'endpoint':<27}{'sent':>7}{'errors':>8}{'rate/s':>8}{'served/s':>9}{'p50':>9}{'p95':>9}{'p99':>9}"
          f"{'max':>9}{'late p99':>9}")
    for name, s in rows.items():
        print(f"{name:<27}{s['sent']:>7}{s['errors']:>8}{s['rate']:>8}{s['completed_per_s']:>9}{s['p50_ms']:>9}"
              f"{s['p95_ms']:>9}{s['p99_ms']:>9}{s['max_ms']:>9}{s['send_lag_p99_ms']:>9}")
        if s["error_kinds"]:
            print(f"{'':<27}errors: {s['error_kinds']}")
    base = rows["GET /healthz (baseline)"]
    verdicts = {}
    for name in ("POST /subscribe", "POST /u/{token} one-click"):
        s = rows[name]
        verdicts[name] = s["p99_ms"] < P99_TARGET_MS and s["errors"] == 0
        print(f"{name}: p50 {s['p50_ms'] / base['p50_ms']:.1f}x, p99 {s['p99_ms'] / base['p99_ms']:.1f}x healthz; "
              f"p99 < {P99_TARGET_MS:g} ms and 0 errors: {'MET' if verdicts[name] else 'NOT MET'}")
    shown = {phase: "n/a" if value is None else f"{100 * value:.0f}%" for phase, value in cpu.items()}
    print(f"server CPU ({args.workers} web processes + mailer; 100% = one core): baseline {shown['baseline']}, load {shown['load']}; "
          f"generator CPU {data['cpu_seconds']:.1f} s in all")
    print(f"confirmation mails captured: {confirmations} of {subscribes} subscribes (incl. warm-up); "
          f"subscriptions by status: {counts}; tracebacks in server log: {server_log.count('Traceback')}; "
          f"load average after: {loadavg()}")
    print(json.dumps({
        "rate": args.rate, "seconds": args.seconds, "workers": args.workers, "subscribers": args.subscribers, "cpus": os.cpu_count(),
        "endpoints": rows, "target_met": verdicts,
        "server_cpu_share": {k: None if v is None else round(v, 2) for k, v in cpu.items()},
        "generator_cpu_seconds": round(data["cpu_seconds"], 1), "confirmations": confirmations,
        "subscriptions": counts, "server_tracebacks": server_log.count("Traceback"),
    }))

if __name__ == "__main__":
    main()

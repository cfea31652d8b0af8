"""Dispatch throughput: digest's full path (claim, personalise, send, record) against a bare smtplib loop.

    python benchmarks/dispatch.py [--messages 20000] [--rounds 4] [--connections 1,4] [--backends sqlite,pg]
                                  [--pg postgresql+psycopg://…]

The sink is an aiosmtpd server in its own process that discards. For each connection count, the
--messages digests per backend are sent in --rounds rounds, interleaved with bare runs of the same
size: bare, digest on SQLite, bare, digest on PostgreSQL (skipped when --pg is unreachable), …, bare.
The bare loop is plain smtplib `sendmail` of one pre-built digest message (the same bytes every time)
over that many reused connections. Each digest run is `Dispatcher(...).run()` on a freshly seeded
edition (seeding not timed; one database per backend and connection count, so later rounds claim
from a longer ledger) with `smtp.max_connections` set to the same count and every other setting at
its default. Each digest run's ratio is taken against the mean of the two bare runs right around it,
so the machine's drift (often ±20 % between runs a minute apart on a shared box) mostly cancels; the
median over rounds is reported with the range. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import smtplib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dispatch_support import free_port, make_settings, seed  # noqa: E402

from digest.db.session import open_database  # noqa: E402
from digest.dispatch.worker import Dispatcher  # noqa: E402


CPU: dict[str, float] = {}  # this process's CPU seconds per message of the last run of each kind


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sink(port: int, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 OK"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    ready.set()
    threading.Event().wait()


def bare_loop(port: int, message: bytes, count: int, connections: int) -> float:
    """msgs/s of plain smtplib sending the same bytes over `connections` reused connections."""
    per = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]

    def one(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for i in range(n):
                client.sendmail("news@digest.example", [f"r{i}@x{i % 7}.example"], message)

    threads = [threading.Thread(target=one, args=(n,)) for n in per]
    started, cpu = time.perf_counter(), _cpu()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    CPU[f"bare_{connections}"] = (_cpu() - cpu) / count
    return count / (time.perf_counter() - started)


def digest_run(folder: Path, db_url: str, port: int, count: int, connections: int) -> tuple[float, bytes]:
    folder.mkdir(exist_ok=True)
    _, settings = make_settings(folder, db_url, port, f"""
        [smtp]
        max_connections = {connections}
        """)
    database = open_database(settings.database.url)
    run = uuid.uuid4().hex  # one tag per run: random per address, 24 bits collided across rounds now and then
    seed(database, [f"r{i}-{run}@x{i % 7}.example" for i in range(count)])
    dispatcher = Dispatcher(database, settings, worker_id=f"bench-{uuid.uuid4().hex[:6]}")
    sample: list[bytes] = []
    original = dispatcher._prepare

    def keep_one(row: Any, *args: Any) -> Any:
        out = original(row, *args)
        if not sample:
            sample.append(out.message)
        return out

    dispatcher._prepare = keep_one  # type: ignore[method-assign]
    started, cpu = time.perf_counter(), _cpu()
    report = dispatcher.run()
    rate = report.sent / (time.perf_counter() - started)
    CPU[f"{'sqlite' if db_url.startswith('sqlite') else 'pg'}_{connections}"] = (_cpu() - cpu) / count
    assert report.sent == count, report.as_dict()
    database.dispose()
    return rate, sample[0]


def pg_database(admin_url: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"digest_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def _rounds(args: argparse.Namespace, port: int, per_round: int, rates: dict[str, list[float]],
            ratios: dict[str, list[float]], drops: list[Any]) -> int:
    """The interleaved runs (filling `rates` and `ratios`); returns the sample message's size."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # the bare loop sends a real digest message: take one from a small digest run
        _, message = digest_run(base / "sample", f"sqlite:///{base / 'sample.db'}", port, 200, 1)
        for conns in [int(c) for c in args.connections.split(",")]:
            urls = {"sqlite": f"sqlite:///{base / f's{conns}.db'}"} if "sqlite" in args.backends else {}
            if args.pg and "pg" in args.backends:
                try:
                    urls["pg"], drop = pg_database(args.pg)
                    drops.append(drop)
                except Exception as exc:  # no server: the SQLite figures still stand
                    print(f"PostgreSQL skipped: {exc.__class__.__name__}", file=sys.stderr)
            bare = bare_loop(port, message, per_round, conns)
            rates.setdefault(f"bare_{conns}", []).append(bare)
            for round_number in range(args.rounds):
                for backend, url in urls.items():
                    rate, _ = digest_run(base / f"{backend}{conns}", url, port, per_round, conns)
                    after = bare_loop(port, message, per_round, conns)
                    rates.setdefault(f"digest_{backend}_{conns}", []).append(rate)
                    rates[f"bare_{conns}"].append(after)
                    ratios.setdefault(f"{backend}_{conns}", []).append(rate / ((bare + after) / 2))
                    bare = after
                    print(f"  {conns} conn, round {round_number + 1}, {backend}: {rate:7.1f} msg/s, "
                          f"ratio {ratios[f'{backend}_{conns}'][-1]:.3f}", file=sys.stderr, flush=True)
    return len(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="digests per backend and connection count")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds the messages are split into")
    parser.add_argument("--connections", default="1,4", help="comma-separated connection counts")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL admin URL ('' to skip)")
    parser.add_argument("--backends", default="sqlite,pg", help="comma-separated: sqlite, pg")
    args = parser.parse_args()
    args.backends = set(args.backends.split(","))
    port, ready = free_port(), mp.Event()
    sink = mp.Process(target=_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    per_round = max(args.messages // args.rounds, 1)
    rates: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    drops: list[Any] = []
    try:
        message_bytes = _rounds(args, port, per_round, rates, ratios, drops)
    finally:  # a failed run must not leave its PostgreSQL databases behind
        for drop in drops:
            drop()
        sink.terminate()
    summary = {"messages_per_round": per_round, "rounds": args.rounds, "message_bytes": message_bytes,
               "load_average": os.getloadavg(),
               "msgs_per_second": {key: [round(v, 1) for v in values] for key, values in rates.items()},
               "digest_vs_bare_same_connections": {key: {"median": round(statistics.median(values), 3),
                                                         "min": round(min(values), 3), "max": round(max(values), 3)}
                                                   for key, values in ratios.items()},
               "client_cpu_us_per_message_last_run": {key: round(value * 1e6) for key, value in CPU.items()}}
    for key, values in rates.items():
        print(f"{key:>20}: median {statistics.median(values):8.1f} msg/s  ({min(values):.0f}–{max(values):.0f})")
    for key, values in ratios.items():
        print(f"{'ratio ' + key:>20}: median {statistics.median(values):.3f}  ({min(values):.3f}–{max(values):.3f})")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

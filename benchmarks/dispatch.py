"""Dispatch throughput: digest's full path (claim, personalise, send, record) against a bare smtplib loop.

    python benchmarks/dispatch.py [--messages 3000] [--connections 4] [--pg postgresql+psycopg://…]

The sink is an aiosmtpd server in its own process that counts and discards. In one run:
bare smtplib with 1 and N connections, digest on SQLite with 1 and N connections, and digest on
PostgreSQL with N connections (when --pg is reachable). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import smtplib
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
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / (time.perf_counter() - started)


def digest_run(folder: Path, db_url: str, port: int, count: int, connections: int) -> tuple[float, bytes]:
    _, settings = make_settings(folder, db_url, port, f"""
        [smtp]
        max_connections = {connections}
        [dispatch]
        batch_size = 200
        """)
    database = open_database(settings.database.url)
    seed(database, [f"r{i}-{uuid.uuid4().hex[:6]}@x{i % 7}.example" for i in range(count)])
    dispatcher = Dispatcher(database, settings, worker_id=f"bench-{uuid.uuid4().hex[:6]}")
    sample: list[bytes] = []
    original = dispatcher._prepare

    def keep_one(session: Any, row: Any, *args: Any) -> Any:
        out = original(session, row, *args)
        if not sample:
            sample.append(out.message)
        return out

    dispatcher._prepare = keep_one  # type: ignore[method-assign]
    started = time.perf_counter()
    report = dispatcher.run()
    rate = report.sent / (time.perf_counter() - started)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL admin URL ('' to skip)")
    args = parser.parse_args()
    port, ready = free_port(), mp.Event()
    sink = mp.Process(target=_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    n, k = args.messages, args.connections
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for conns in (1, k):
            (base / f"s{conns}").mkdir()
            results[f"digest_sqlite_{conns}"], message = digest_run(base / f"s{conns}", f"sqlite:///{base / f's{conns}' / 'd.db'}",
                                                                    port, n, conns)
        for conns in (1, k):
            results[f"bare_{conns}"] = bare_loop(port, message, n, conns)
        if args.pg:
            try:
                url, drop = pg_database(args.pg)
            except Exception as exc:  # no server: the SQLite figures still stand
                print(f"PostgreSQL skipped: {exc.__class__.__name__}", file=sys.stderr)
            else:
                try:
                    (base / "pg").mkdir()
                    results[f"digest_pg_{k}"], _ = digest_run(base / "pg", url, port, n, k)
                finally:
                    drop()
    sink.terminate()
    summary = {
        "messages": n, "connections": k, "message_bytes": len(message),
        "msgs_per_second": {key: round(value, 1) for key, value in results.items()},
        f"pool_speedup_bare_{k}_vs_1": round(results[f"bare_{k}"] / results["bare_1"], 2),
        f"pool_speedup_digest_{k}_vs_1": round(results[f"digest_sqlite_{k}"] / results["digest_sqlite_1"], 2),
        "digest_vs_bare_same_connections": round(results[f"digest_sqlite_{k}"] / results[f"bare_{k}"], 2),
    }
    if f"digest_pg_{k}" in results:
        summary["postgresql_vs_sqlite"] = round(results[f"digest_pg_{k}"] / results[f"digest_sqlite_{k}"], 2)
    for key, value in summary["msgs_per_second"].items():  # type: ignore[union-attr]
        print(f"{key:>20}: {value:8.1f} msg/s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

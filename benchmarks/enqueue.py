"""Enqueue time at scale, and the peak memory of a send as the audience grows.

    python benchmarks/enqueue.py [--enqueue 100000,1000000] [--proposed SIZES] [--pg-timeout 120] [--plans]
                                 [--send 10000,200000] [--send-timeout 600] [--connections 4]
                                 [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Part 1 (enqueue). For each N: one list, one `ready` edition with one variant (':en'), N subscribers with
confirmed subscriptions (created set-based: recursive CTE on SQLite, generate_series on PostgreSQL; not timed)
and 1,000 suppressed addresses outside the audience. Then `digest.db.editions.enqueue(session, edition, now)`
plus its commit is timed, on SQLite (a file in a temporary folder) and on PostgreSQL (a fresh database,
ANALYZEd after the load as autovacuum would, dropped afterwards; a statement past --pg-timeout is reported as
not done). Per-statement times, the latency of the first `claim_batch` against the full queue and, with --plans,
the plans as executed (EXPLAINed just before each statement runs) are printed. At the --proposed sizes (none
by default) the enqueue is also timed with `proposed_insert`, a local copy of the insert to try a variant on
(today it equals the code's ON CONFLICT DO NOTHING insert; not project code).

Part 2 (memory). For each N, a SQLite database is seeded the same way and enqueued, then a *spawned* child
process (so its RSS is its own, not inherited) runs `Dispatcher(database, settings).run()` against a discarding
aiosmtpd server in a third process. The child reports ru_maxrss (its peak RSS) before the run and every N/10
messages, and its send rate. A run still going at --send-timeout stops gracefully (should_stop) and says so.

Prints a table per part and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import bindparam, event, func, select, text  # noqa: E402

from dispatch_support import free_port, make_settings  # noqa: E402

from digest.db import deliveries as ledger  # noqa: E402
from digest.db.editions import enqueue  # noqa: E402
from digest.db.models import Delivery, Edition, EditionVariant, MailingList, UTCDateTime, utcnow  # noqa: E402
from digest.db.session import Database, open_database  # noqa: E402

ENQUEUE_GOAL_SECONDS = 15.0
RSS_GOAL_MB = 150.0
RSS_GOAL_RATIO = 1.10
DOMAINS = 7
SUPPRESSED = 1000


# --- set-up: not measured ---------------------------------------------------------------------------

def build_audience(database: Database, n: int, *, analyze: bool = True) -> int:
    """A list, a ready edition with one ':en' variant, n confirmed subscribers; returns the edition id."""
    now = utcnow()
    pg = not database.is_sqlite
    with database.session() as session:
        mailing_list = MailingList(slug="daily", name="Test Daily", from_address="Test Daily <news@digest.example>",
                                   schedule="0 7 * * *", timezone="UTC")
        session.add(mailing_list)
        session.flush()
        edition = Edition(list_id=mailing_list.id, period=f"bench-{n}", status="ready", subject="Hello", created_at=now)
        session.add(edition)
        session.flush()
        token = "t7f3a9c"
        greet, unsub = f"ZQ{token}GREETINGQZ", f"ZQ{token}UNSUBSCRIBEQZ"
        session.add(EditionVariant(edition_id=edition.id, variant_key=":en", subject="Today's digest",
                                   html=f"<p>{greet}</p><p>{'News of the day. ' * 40}</p><a href=\"{unsub}\">unsubscribe</a>",
                                   text=f"{greet}\n\n{'News of the day. ' * 40}\n\nUnsubscribe: {unsub}\n",
                                   placeholder_token=token))
        session.flush()
        series = "generate_series(1, :n) AS g(i)" if pg else "c"
        cte = "" if pg else "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
        stamp = bindparam("now", type_=UTCDateTime())
        session.execute(text(
            f"INSERT INTO subscribers (email, name, timezone, send_hour, locale, created_at) {cte}"
            f"SELECT 'r' || i || '@x' || (i % {DOMAINS}) || '.example', '', 'UTC', NULL, 'en', :now FROM {series}"
        ).bindparams(stamp), {"n": n, "now": now})
        session.execute(text(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, topics, topics_key, frequency, weekly_day,"
            " created_at, confirmed_at, consent_source) "
            f"SELECT :list_id, id, 'confirmed', {'CAST(' if pg else ''}'[]'{' AS JSON)' if pg else ''}, '', 'daily', 0,"
            " :now, :now, 'bench' FROM subscribers ORDER BY id"
        ).bindparams(stamp), {"list_id": mailing_list.id, "now": now})
        cte = "" if pg else f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {SUPPRESSED}) "
        session.execute(text(
            f"INSERT INTO suppressions (email, reason, created_at, kind) {cte}"
            f"SELECT 'gone' || i || '@elsewhere.example', 'bench', :now, 'admin' "
            f"FROM {'generate_series(1, %d) AS g(i)' % SUPPRESSED if pg else 'c'}"
        ).bindparams(stamp), {"now": now})
        edition_id = edition.id
    if pg and analyze:  # what autovacuum does soon after a bulk load; without it the planner guesses row counts
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return edition_id


# --- part 1: enqueue --------------------------------------------------------------------------------

def proposed_insert(session: Any, edition: Edition, now: dt.datetime, when: dt.datetime, buckets: list[Any],
                    conditions: list[object]) -> int:
    """NOT project code: digest.db.editions._insert with the NOT EXISTS anti-join on `deliveries` replaced by
    ON CONFLICT (edition_id, subscriber_id) DO NOTHING, timed with --proposed to show what that change buys."""
    from sqlalchemy import and_, exists, literal, or_
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from digest.db.models import DeliveryState, Subscriber, Subscription, Suppression

    key_expr = Subscription.topics_key + literal(":") + Subscriber.locale
    suppressed = exists().where(Suppression.email == Subscriber.email)
    columns = Delivery.__table__.c
    source = (
        select(literal(edition.id), Subscription.subscriber_id, EditionVariant.id, literal(DeliveryState.queued.value),
               literal(0), literal(when, type_=columns.next_attempt_at.type), literal(""), literal(""),
               literal(now, type_=columns.created_at.type))
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(EditionVariant, and_(EditionVariant.edition_id == edition.id, EditionVariant.variant_key == key_expr))
        .where(*conditions, ~suppressed)
    )
    if buckets:
        source = source.where(or_(*[
            and_(Subscriber.timezone == tz, Subscriber.send_hour.is_(None) if hour is None else Subscriber.send_hour == hour)
            for tz, hour in buckets]))
    names = ["edition_id", "subscriber_id", "variant_id", "state", "attempts", "next_attempt_at", "last_reply",
             "message_id", "created_at"]
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = make(Delivery).from_select(names, source).on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    return int(session.execute(statement.execution_options(preserve_rowcount=True)).rowcount or 0)


class StatementLog:
    """Every statement the engine runs while active, with its wall time; writes and the claim query are
    EXPLAINed on the same connection just before they run, so the plan shown is the one executed (the
    statistics of the still empty `deliveries` table decide it, not those after the insert)."""

    def __init__(self, database: Database) -> None:
        self.engine = database.engine
        self.prefix = "EXPLAIN QUERY PLAN " if database.is_sqlite else "EXPLAIN "
        self.sqlite = database.is_sqlite
        self.rows: list[dict[str, Any]] = []
        self.active = False
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not self.active:
            return
        plan: list[str] = []
        head = statement.lstrip().upper()
        explained = head.startswith(("INSERT", "UPDATE")) or (head.startswith("SELECT") and "FROM deliveries" in statement)
        if explained and not many:
            probe = cursor.connection.cursor()
            probe.execute(self.prefix + statement, parameters)
            plan = format_plan(probe.fetchall(), self.sqlite)
            probe.close()
        conn.info["bench_plan"] = plan
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if self.active and "bench_started" in conn.info:
            self.rows.append({"sql": statement, "plan": conn.info.pop("bench_plan"),
                              "seconds": time.perf_counter() - conn.info.pop("bench_started")})

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def format_plan(rows: list[Any], sqlite: bool) -> list[str]:
    if sqlite:  # (id, parent, notused, detail): indent by depth
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines
    return [str(row[0]) for row in rows]


def enqueue_run(url: str, n: int, *, proposed: bool = False) -> dict[str, Any]:
    from sqlalchemy.exc import OperationalError

    from digest.db import editions as editions_module

    database = open_database(url)
    started = time.perf_counter()
    edition_id = build_audience(database, n)
    setup = time.perf_counter() - started
    log = StatementLog(database)
    now = utcnow()
    with database.session() as session:
        edition = session.get(Edition, edition_id)
        assert edition is not None
        log.active = True
        original = editions_module._insert
        if proposed:
            editions_module._insert = proposed_insert  # type: ignore[assignment]
        t0 = time.perf_counter()
        try:
            rows = enqueue(session, edition, now)
        except OperationalError as exc:  # statement_timeout (--pg-timeout): report it, do not wait for hours
            session.rollback()
            log.close()
            database.dispose()
            return {"n": n, "setup_seconds": round(setup, 1), "timed_out": True,
                    "total_seconds": round(time.perf_counter() - t0, 1), "error": str(exc).splitlines()[0]}
        finally:
            editions_module._insert = original  # type: ignore[assignment]
        t1 = time.perf_counter()
        session.commit()
        t2 = time.perf_counter()
        log.active = False
    with database.session() as session:
        stored = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id))
    assert stored == n, (rows, n, stored)
    statements = [{"sql": " ".join(r["sql"].split())[:90], "seconds": round(r["seconds"], 3)} for r in log.rows]
    plans = {f"statement {i + 1}": r["plan"] for i, r in enumerate(log.rows) if r["plan"]}
    # The first claim against the full queue (rolled back): the send path's per-batch query.
    log.rows.clear()
    log.active = True
    with database.session() as session:
        c0 = time.perf_counter()
        claimed = ledger.claim_batch(session, "probe", now + dt.timedelta(seconds=1), lease_seconds=60, limit=100)
        claim_ms = (time.perf_counter() - c0) * 1000
        session.rollback()
    log.active = False
    plans["claim_batch"] = [line for r in log.rows if r["plan"] for line in [r["sql"].split()[0] + ":", *r["plan"]]]
    log.close()
    database.dispose()
    total = t2 - t0
    return {"n": n, "setup_seconds": round(setup, 1), "timed_out": False, "enqueue_seconds": round(t1 - t0, 2),
            "commit_seconds": round(t2 - t1, 2), "total_seconds": round(total, 2), "rows_per_second": round(n / total),
            "enqueue_returned": rows,  # -1 on PostgreSQL (psycopg 3): see docs/dispatch.md "Enqueue and memory"
            "statements": statements, "first_claim_ms": round(claim_ms, 1), "claimed": len(claimed), "plans": plans}


def pg_database(admin_url: str, timeout: float = 0) -> tuple[str, Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"digest_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(admin_url).set(database=name)
    if timeout:  # server-side statement_timeout for this benchmark's connections only
        url = url.update_query_dict({"options": f"-c statement_timeout={int(timeout * 1000)}"})
    return url.render_as_string(hide_password=False), drop


# --- part 2: peak RSS of a send ---------------------------------------------------------------------

def _sink(port: int, ready: Any) -> None:
    """Accepts and discards every message (as benchmarks/dispatch.py)."""
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 OK"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    ready.set()
    threading.Event().wait()


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _send_child(config: str, n: int, timeout: float, results: Any) -> None:
    """Runs in a spawned process: only the dispatcher's own memory counts."""
    from digest.config import load_settings
    from digest.dispatch.worker import Dispatcher

    settings = load_settings(Path(config))
    database = open_database(settings.database.url)
    dispatcher = Dispatcher(database, settings, worker_id=f"bench-{os.getpid()}")
    before = _max_rss_mb()
    step = max(n // 10, 1)
    samples: list[tuple[int, float, float]] = []
    lock = threading.Lock()
    started = time.perf_counter()

    def progress(report: Any) -> None:
        if report.sent and report.sent % step == 0:
            with lock:
                if not samples or samples[-1][0] != report.sent:
                    samples.append((report.sent, round(_max_rss_mb(), 1), round(time.perf_counter() - started, 1)))

    deadline = started + timeout
    report = dispatcher.run(progress=progress, should_stop=lambda: time.perf_counter() > deadline)
    elapsed = time.perf_counter() - started
    results.put({"n": n, "sent": report.sent, "failed": report.failed, "deferred": report.deferred,
                 "stopped_early": report.sent < n, "seconds": round(elapsed, 1),
                 "rate_per_second": round(report.sent / elapsed, 1), "rss_before_run_mb": round(before, 1),
                 "peak_rss_mb": round(_max_rss_mb(), 1), "rss_at_end_mb": round(_current_rss_mb(), 1),
                 "samples_sent_peakmb_seconds": samples, "errors": report.errors[:3]})
    database.dispose()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_run(ctx: Any, folder: Path, port: int, n: int, connections: int, timeout: float) -> dict[str, Any]:
    url = f"sqlite:///{folder / 'send.db'}"
    config, _ = make_settings(folder, url, port, f"""
        [smtp]
        max_connections = {connections}
        """)
    database = open_database(url)
    edition_id = build_audience(database, n)
    with database.session() as session:
        edition = session.get(Edition, edition_id)
        assert edition is not None and enqueue(session, edition, utcnow()) == n
    database.dispose()
    results = ctx.Queue()
    child = ctx.Process(target=_send_child, args=(str(config), n, timeout, results))
    child.start()
    result = results.get()  # before join: a full queue would block the child's exit
    child.join()
    return result


# --- main ---------------------------------------------------------------------------------------------

def _sizes(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enqueue", type=_sizes, default=[100_000, 1_000_000], help="audience sizes for part 1 ('' to skip)")
    parser.add_argument("--send", type=_sizes, default=[10_000, 200_000], help="audience sizes for part 2 ('' to skip)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--send-timeout", type=float, default=600.0, help="seconds before a send stops gracefully")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL admin URL ('' to skip)")
    parser.add_argument("--pg-timeout", type=float, default=120.0,
                        help="statement_timeout (s) for the PostgreSQL enqueue; a run past it is reported as timed out")
    parser.add_argument("--proposed", type=_sizes, default=[],
                        help="sizes at which to also time proposed_insert (ON CONFLICT DO NOTHING; not project code)")
    parser.add_argument("--plans", action="store_true", help="print the query plans")
    args = parser.parse_args()
    summary: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "enqueue": [], "send": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for n in args.enqueue:
            variants = [("current", False)] + ([("proposed", True)] if n in args.proposed else [])
            for backend in ("sqlite", "postgresql"):
                if backend == "postgresql" and not args.pg:
                    continue
                for label, proposed in variants:
                    drop = None
                    if backend == "sqlite":
                        url = f"sqlite:///{base / f'enqueue-{n}-{label}.db'}"
                    else:
                        try:
                            url, drop = pg_database(args.pg, args.pg_timeout)
                        except Exception as exc:  # no server: the SQLite figures still stand
                            print(f"PostgreSQL skipped: {exc.__class__.__name__}: {exc}", file=sys.stderr)
                            continue
                    try:
                        result = {"backend": backend, "code": label, **enqueue_run(url, n, proposed=proposed)}
                    finally:
                        if drop:
                            drop()
                        elif backend == "sqlite":
                            for suffix in ("", "-wal", "-shm"):
                                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
                    result["goal_held"] = not result["timed_out"] and result["total_seconds"] <= ENQUEUE_GOAL_SECONDS
                    summary["enqueue"].append(result)
                    if result["timed_out"]:
                        print(f"enqueue {backend:>10} {label:>8} N={n:>9,}: NOT DONE after {result['total_seconds']} s "
                              f"({result['error']}); set-up {result['setup_seconds']} s", flush=True)
                        continue
                    print(f"enqueue {backend:>10} {label:>8} N={n:>9,}: {result['total_seconds']:7.2f} s "
                          f"(insert {result['enqueue_seconds']:.2f} + commit {result['commit_seconds']:.2f}), "
                          f"{result['rows_per_second']:>9,} rows/s; set-up {result['setup_seconds']} s; "
                          f"first claim {result['first_claim_ms']} ms; enqueue() returned {result['enqueue_returned']}",
                          flush=True)
                    for statement in result["statements"]:
                        print(f"    {statement['seconds']:8.3f} s  {statement['sql']}")
                    if args.plans:
                        for name, plan in result["plans"].items():
                            print(f"    plan of {name}:")
                            for line in plan:
                                print(f"      {line}")
        if args.send:
            ctx = mp.get_context("spawn")
            port, ready = free_port(), ctx.Event()
            sink = ctx.Process(target=_sink, args=(port, ready), daemon=True)
            sink.start()
            ready.wait(10)
            try:
                for n in args.send:
                    folder = base / f"send-{n}"
                    folder.mkdir()
                    sink_cpu = _cpu_seconds(sink.pid)
                    result = send_run(ctx, folder, port, n, args.connections, args.send_timeout)
                    result["sink_cpu_seconds"] = round(_cpu_seconds(sink.pid) - sink_cpu, 1)
                    summary["send"].append(result)
                    print(f"send N={n:>9,}: sent {result['sent']:,} in {result['seconds']} s "
                          f"({result['rate_per_second']} msg/s){' STOPPED EARLY' if result['stopped_early'] else ''}; "
                          f"peak RSS {result['peak_rss_mb']} MB (before run {result['rss_before_run_mb']} MB, "
                          f"at end {result['rss_at_end_mb']} MB); sink CPU {result['sink_cpu_seconds']} s", flush=True)
                    print(f"    samples (sent, peak MB, s): {result['samples_sent_peakmb_seconds']}")
            finally:
                sink.terminate()
            if len(summary["send"]) >= 2:
                small, large = summary["send"][0], summary["send"][-1]
                ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
                summary["rss_ratio_large_vs_small"] = round(ratio, 3)
                summary["rss_goal_held"] = ratio <= RSS_GOAL_RATIO and large["peak_rss_mb"] <= RSS_GOAL_MB
                print(f"peak RSS {large['sent']:,} vs {small['sent']:,} sent: ×{ratio:.3f} "
                      f"(goal ≤ ×{RSS_GOAL_RATIO} and ≤ {RSS_GOAL_MB:.0f} MB: {'held' if summary['rss_goal_held'] else 'MISSED'})")
    if not args.plans:
        for result in summary["enqueue"]:
            result.pop("plans", None)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()

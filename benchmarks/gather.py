"""Benchmark the gather stage against a plain sequential feedparser loop, over the same loopback feeds.

    python benchmarks/gather.py                       # 500 feeds × 50 items, 100 ms latency, 50 hosts
    python benchmarks/gather.py --feeds 100 --items 20  # quicker

A separate process serves the feeds from `--hosts` loopback addresses (127.0.0.2, 127.0.0.3, …: distinct hosts
to the client, so per-host politeness applies as it would on the internet), adding `--latency` seconds before
every response. Every tenth feed re-publishes the previous feed's items under its own URLs (syndication), so
dedupe has real work. Figures printed: wall time, items/s, client CPU ms per item, the ratio to the sequential
loop, the feed server's own CPU per request in each run, the cost of dedupe alone, and a second (all-304) run.
digest's CPU counts its parse processes too (`[gather] parse_processes`: one per core when at least 16 sources
are due).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import tempfile
import threading
import time
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WORDS = ("court council union workers port migrant wages housing tenants rent shelter river farm cable island "
         "minister budget school teachers nurses hospital strike vote election mayor police press festival museum "
         "railway station bridge flood drought harvest fishermen cooperative factory textile steel shipyard welders "
         "judge ruling appeal protest march rally petition survey report study data climate energy solar wind grid "
         "north south east west city village province coast mountain valley market price tax refund pension").split()


def feed_body(feed: int, items: int, now: float) -> bytes:
    """RSS 2.0 with `items` entries; feed 10k+9 copies feed 10k+8's texts (a syndicating outlet)."""
    source = feed - 1 if feed % 10 == 9 else feed
    rng = random.Random(source)
    entries = []
    for i in range(items):
        text = " ".join(rng.choice(WORDS) for _ in range(70))
        title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        when = format_datetime(_dt(now - 60 * (i + 1)))
        entries.append(f"<item><title>{title}</title><link>https://site{feed}.example/story/{i}?utm_source=rss</link>"
                       f"<guid>feed{feed}-item{i}</guid><pubDate>{when}</pubDate>"
                       f"<description><![CDATA[<p>{text}</p><p><a href='/more/{i}'>Read more</a></p>]]></description></item>")
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {feed}</title>"
            f"<link>https://site{feed}.example/</link>{''.join(entries)}</channel></rss>").encode()


def _dt(timestamp: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def serve(hosts: int, feeds: int, items: int, latency: float, ready: Any, stop: Any, control: Any) -> None:
    """Child process: one threaded HTTP server per loopback address; /feed/N with ETag, after `latency` s.
    Answers every message on `control` with its own CPU seconds so far (both sides pay for this server)."""
    now = time.time()
    bodies = {n: feed_body(n, items, now) for n in range(feeds)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            time.sleep(latency)
            number = int(self.path.rsplit("/", 1)[1])
            etag = f'"v1-{number}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = bodies[number]
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256

    servers = [Server((f"127.0.0.{h + 2}", 0), Handler) for h in range(hosts)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ready.put([(f"127.0.0.{h + 2}", s.server_port) for h, s in enumerate(servers)])
    deadline = time.monotonic() + 1800  # bounded: the server never outlives a forgotten benchmark by more than 30 min
    while not stop.is_set() and time.monotonic() < deadline:
        if control.poll(0.2):
            control.recv()
            control.send(time.process_time())


def sequential_baseline(urls: list[str]) -> tuple[float, float, int]:
    import feedparser

    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(len(feedparser.parse(url).entries) for url in urls)
    return time.perf_counter() - wall, time.process_time() - cpu, count


def digest_gather(urls: list[str], concurrency: int, per_host: int, delay: float,
                  db: Path) -> tuple[float, float, float, Any]:
    from digest.config import Settings, SourceConfig
    from digest.db.session import open_database
    from digest.gather import gather_sources

    settings = Settings(sources=[SourceConfig(name=f"feed {i}", url=u) for i, u in enumerate(urls)],
                        gather={"concurrency": concurrency, "per_host": per_host, "host_delay": delay,
                                "max_age_days": 30})
    database = open_database("sqlite:///" + str(db))
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    outcomes = gather_sources(database, settings)
    # The parse processes have been joined by now, so their CPU shows in RUSAGE_CHILDREN (the feed server,
    # also a child, is only reaped at the very end).
    result = (time.perf_counter() - wall, time.process_time() - cpu, _children_cpu() - children, outcomes)
    database.dispose()
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dedupe_cost(feeds: int, items: int) -> tuple[float, float, int]:
    """CPU of fingerprinting and index lookups alone, over the same texts (ms per item)."""
    from digest.gather.clean import html_to_text
    from digest.gather.dedupe import NearDuplicateIndex, fingerprints
    from digest.gather.parse import parse_xml_feed

    parsed = [parse_xml_feed(feed_body(n, items, time.time())) for n in range(feeds)]
    per_feed = [[(i.title, html_to_text(i.summary_html)) for i in feed] for feed in parsed]
    texts = [text for feed in per_feed for text in feed]
    start = time.process_time()
    signatures = [signature for feed in per_feed for signature in fingerprints(feed)]  # a feed at a time, as gather does
    fingerprinting = time.process_time() - start
    index = NearDuplicateIndex(0.8)
    start = time.process_time()
    duplicates = 0
    for key, signature in enumerate(signatures):
        if index.match(signature) is not None:
            duplicates += 1
        elif signature is not None:
            index.add(key, signature)
    lookup = time.process_time() - start
    return 1000 * fingerprinting / len(texts), 1000 * lookup / len(texts), duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added before every response")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--host-delay", type=float, default=0.1, help="seconds between request starts per host")
    args = parser.parse_args()

    context = mp.get_context("spawn")  # the server runs in its own process: its CPU is not counted as ours
    ready, stop = context.Queue(), context.Event()
    control, server_end = context.Pipe()
    server = context.Process(target=serve, args=(args.hosts, args.feeds, args.items, args.latency, ready, stop,
                                                 server_end), daemon=True)
    server.start()
    try:
        addresses = ready.get(timeout=120)
        urls = [f"http://{addresses[n % args.hosts][0]}:{addresses[n % args.hosts][1]}/feed/{n}"
                for n in range(args.feeds)]
        total = args.feeds * args.items
        print(f"{args.feeds} feeds × {args.items} items from {args.hosts} loopback hosts, "
              f"{args.latency * 1000:.0f} ms added latency per response")

        def server_cpu() -> float:
            control.send("cpu?")
            return float(control.recv())

        served = server_cpu()
        base_wall, base_cpu, base_items = sequential_baseline(urls)
        base_served, served = server_cpu() - served, server_cpu()
        print(f"sequential feedparser loop: {base_wall:6.2f} s wall, {base_items / base_wall:7.0f} items/s, "
              f"{1000 * base_cpu / base_items:.3f} ms CPU/item")

        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "bench.db"
            wall, cpu, parse_cpu, outcomes = digest_gather(urls, args.concurrency, args.per_host, args.host_delay, db)
            digest_served = server_cpu() - served
            failed = [o for o in outcomes if not o.ok]
            seen = sum(o.seen_items for o in outcomes)
            new = sum(o.new_items for o in outcomes)
            dupes = sum(o.duplicates for o in outcomes)
            print(f"digest gather (concurrency {args.concurrency}, per host {args.per_host}, delay "
                  f"{args.host_delay:g} s): {wall:6.2f} s wall, {seen / wall:7.0f} items/s, "
                  f"{1000 * (cpu + parse_cpu) / seen:.3f} ms CPU/item (main process {1000 * cpu / seen:.3f} + parse "
                  f"processes {1000 * parse_cpu / seen:.3f}) — parsed, sanitised, deduped and stored in SQLite")
            print(f"  {new} new articles, {dupes} syndicated copies recorded as sightings, {len(failed)} failed")
            print(f"  throughput ratio vs sequential: {(seen / wall) / (base_items / base_wall):.1f}×")
            print(f"  the feed server's own CPU (both sides pay it): {1000 * base_served / args.feeds:.2f} ms per request "
                  f"during the sequential loop, {1000 * digest_served / args.feeds:.2f} ms during digest's run")
            wall2, _, _, outcomes2 = digest_gather(urls, args.concurrency, args.per_host, args.host_delay, db)
            unchanged = sum(o.status == "not-modified" for o in outcomes2)
            print(f"second run (conditional GET): {wall2:6.2f} s wall, {unchanged}/{len(outcomes2)} not modified")

        fp_ms, lookup_ms, found = dedupe_cost(min(args.feeds, 100), args.items)
        print(f"dedupe alone (first {min(args.feeds, 100)} feeds): fingerprint {fp_ms:.3f} ms/item, "
              f"index lookup+add {lookup_ms:.3f} ms/item, {found} near-duplicates found")
        assert total == base_items, "baseline saw a different number of items"
    finally:
        stop.set()
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Mock of the monitor endpoints of `tokcom serve`, for developing the web page and for the docs.

Serves the page at `/` (read from --page on every request, so edits show on reload) and a
synthetic, evolving `/api/state` in the same JSON shape as the real server: four devices whose
Lyapunov controllers change their decisions over time; one of them has disconnected, one sends
no labels, one does not report its bound ζ_max (so it has no virtual queue either).

    python3 scripts/mock_monitor.py --port 8080                 # http://127.0.0.1:8080/
    python3 scripts/mock_monitor.py --port 8080 --token s3cret  # http://127.0.0.1:8080/?token=s3cret
    python3 scripts/mock_monitor.py --empty                     # no devices, no samples yet
    python3 scripts/mock_monitor.py --state state.json          # a fixed state, e.g. saved from a server

With --token, `/api/state` answers 401 unless the request carries `Authorization: Bearer <token>`.
The page itself is served without a token: a browser cannot send the header when opening it, so
the page reads the token from its own `?token=` and sends the header on each fetch.
Python 3 standard library only.
"""
import argparse
import collections
import hmac
import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RATIOS = [0.01, 0.05, 0.1]
BUDGETS = [0.25, 0.5, 0.75, 1.0]
INPUT_VALUES = 12288          # 64 × 64 × 3
HISTORY = 200                 # slots kept per device
SERIES = 300                  # one-second samples kept
TICK = 0.25                   # simulation step, seconds
DEFAULT_PAGE = Path(__file__).resolve().parent.parent / "src/tokcom/net/page/index.html"


class Device:
    """One edge stream; each slot it picks (α, r) by drift-plus-penalty and sends ζ."""

    def __init__(self, dev_id, name, peer, period, snr_mean, zeta_max, labels, seed, stop_after=None):
        self.id, self.name, self.peer, self.period, self.snr_mean = dev_id, name, peer, period, snr_mean
        self.zeta_max, self.labels, self.stop_after = zeta_max, labels, stop_after
        self.rng = random.Random(seed)
        self.phase = self.rng.uniform(0, 6.28)
        self.opened = None
        self.closed = None
        self.status = ""
        self.next_slot_at = None
        self.slot = -1
        self.requests = self.errors = self.labelled = self.correct = 0
        self.zeta_sum = 0.0
        self.queue = 0.0 if zeta_max is not None else None
        self.hist = {k: collections.deque(maxlen=HISTORY)
                     for k in ("slot", "unix", "snr_db", "budget", "ratio", "zeta", "queue")}
        self.last = None

    @property
    def connected(self):
        return self.opened is not None and self.closed is None

    def quality(self, budget, ratio, snr_db):
        """Stand-in for accuracy: more tokens and more symbols help, more so at low SNR."""
        snr = 10 ** (snr_db / 10)
        return 0.35 + 0.6 * (1 - math.exp(-4 * budget)) * (1 - math.exp(-3 * ratio * snr))

    def step(self, now):
        self.slot += 1
        snr_db = self.snr_mean + 7 * math.sin(self.slot / 17 + self.phase) + self.rng.gauss(0, 1.2)
        if self.zeta_max is not None:
            # drift-plus-penalty: max V·quality − Z·ζ over the (α, r) grid
            v = 0.1
            budget, ratio = max(((b, r) for b in BUDGETS for r in RATIOS),
                                key=lambda br: v * self.quality(*br, snr_db) - self.queue * br[0] * br[1])
        else:
            # no bound given: a fixed schedule that still changes now and then
            budget, ratio = [(0.5, 0.05), (0.75, 0.05), (0.5, 0.1)][(self.slot // 25) % 3]
        symbols = round(budget * ratio * INPUT_VALUES * self.rng.uniform(0.97, 1.0))
        zeta = symbols / INPUT_VALUES
        self.requests += 1
        if self.rng.random() < 0.01:
            self.errors += 1
        if self.labels:
            self.labelled += 1
            self.correct += self.rng.random() < self.quality(budget, ratio, snr_db)
        self.zeta_sum += zeta
        if self.queue is not None:
            self.queue = max(self.queue + zeta - self.zeta_max, 0.0)
        snr_db = round(snr_db, 2)
        for k, v in (("slot", self.slot), ("unix", round(now, 3)), ("snr_db", snr_db), ("budget", budget),
                     ("ratio", ratio), ("zeta", zeta),
                     ("queue", None if self.queue is None else round(self.queue, 6))):
            self.hist[k].append(v)
        self.last = {"slot": self.slot, "snr_db": snr_db, "budget": budget, "ratio": ratio, "zeta": zeta}

    def state(self):
        return {
            "id": self.id, "name": self.name, "peer": self.peer, "connected": self.connected,
            "opened_unix": self.opened, "closed_unix": self.closed, "status": self.status,
            "requests": self.requests, "errors": self.errors, "labelled": self.labelled,
            "correct": self.correct,
            "accuracy": round(self.correct / self.labelled, 4) if self.labelled else None,
            "zeta_max": self.zeta_max,
            "zeta_mean": round(self.zeta_sum / self.requests, 6) if self.requests else None,
            "queue": None if self.queue is None else round(self.queue, 6),
            "last": self.last,
            "history": {k: list(v) for k, v in self.hist.items()},
        }


class World:
    """The whole mock server, advanced in TICK steps up to the present on each request."""

    def __init__(self, empty, odd_names, seed=7):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        now = time.time()
        self.started = now - (0 if empty else 120)
        self.t = self.started
        self.devices = [] if empty else [
            Device(1, "cam-north", "ipv4:10.0.0.11:41234", 0.5, 18, 0.03, True, 1),
            Device(2, "cam-south", "ipv4:10.0.0.12:50110", 0.75, 8, 0.02, False, 2),
            Device(3, "drone-7", "ipv4:10.0.0.31:39002", 1.0, 4, 0.04, True, 3, stop_after=60),
            Device(4, 'rover "β" <b>4</b>' if odd_names else "rover-4", "ipv6:[fd00::4]:47000", 1.0, 10, None, True, 4),
        ]
        for i, d in enumerate(self.devices):   # streams open a few seconds apart
            d.open_at = self.started + 1 + 3 * i
        self.batches = collections.Counter()
        self.latencies = collections.deque(maxlen=2000)   # (unix, ms)
        self.cancelled = 0
        self.series = {k: collections.deque(maxlen=SERIES) for k in ("unix", "requests", "errors", "p50_ms", "p99_ms")}
        self.next_sample = self.started + 1
        self.empty = empty
        if not empty:
            self.advance(now)                # pre-populate two minutes of history

    def advance(self, until):
        while self.t + TICK <= until:
            self.t += TICK
            batch = 0
            for d in self.devices:
                if d.opened is None and self.t >= d.open_at:
                    d.opened = round(self.t, 3)
                    d.next_slot_at = self.t
                if not d.connected or self.t < d.next_slot_at:
                    continue
                d.step(self.t)
                d.next_slot_at += d.period
                batch += 1
                self.latencies.append((self.t, self.rng.lognormvariate(math.log(2.2), 0.45)))
                if d.stop_after is not None and d.slot + 1 >= d.stop_after:
                    d.closed, d.status = round(self.t, 3), "CANCELLED"
                    self.cancelled += 1
            if batch:
                self.batches[batch] += 1
            if self.t >= self.next_sample and not self.empty:
                self.sample(self.next_sample)
                self.next_sample += 1

    def latency_pcts(self, since):
        ms = sorted(v for (t, v) in self.latencies if t > since)
        if not ms:
            return None, None, None, None
        pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
        return pick(0.5), pick(0.9), pick(0.99), sum(ms) / len(ms)

    def sample(self, at):
        p50, _, p99, _ = self.latency_pcts(at - 1)
        s = self.series
        s["unix"].append(round(at, 3))
        s["requests"].append(sum(d.requests for d in self.devices))
        s["errors"].append(sum(d.errors for d in self.devices))
        s["p50_ms"].append(None if p50 is None else round(p50, 3))
        s["p99_ms"].append(None if p99 is None else round(p99, 3))

    def state(self):
        with self.lock:
            now = time.time()
            self.advance(now)
            requests = sum(d.requests for d in self.devices)
            errors = sum(d.errors for d in self.devices)
            nbatches = sum(self.batches.values())
            p50, p90, p99, mean = self.latency_pcts(-1)
            r3 = lambda x: None if x is None else round(x, 3)
            return {
                "server": {"version": "tokcom 0.9.0 (mock)", "method": "proposal", "ratios": RATIOS,
                           "controller": True, "mode": "hard", "input_values": INPUT_VALUES,
                           "started_unix": round(self.started, 3), "now_unix": round(now, 3)},
                "totals": {"received": requests + errors, "requests": requests, "errors": errors,
                           "cancelled": self.cancelled, "batches": nbatches,
                           "mean_batch": round(requests / nbatches, 4) if nbatches else None,
                           "streams": sum(d.opened is not None for d in self.devices),
                           "decisions": sum(d.requests for d in self.devices if d.zeta_max is not None),
                           "devices_connected": sum(d.connected for d in self.devices),
                           "latency_ms": {"p50": r3(p50), "p90": r3(p90), "p99": r3(p99), "mean": r3(mean)}},
                "batch_sizes": sorted([k, v] for k, v in self.batches.items()),
                "series": {k: list(v) for k, v in self.series.items()},
                "devices": [d.state() for d in self.devices if d.opened is not None],
            }


def make_handler(world, page, token, state_file=None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "tokcom-mock"

        def send(self, code, ctype, body, extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self.send(200, "text/html; charset=utf-8", Path(page).read_bytes())
            elif path == "/api/state":
                if token is not None:
                    got = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
                        body = json.dumps({"error": "unauthorized"}).encode()
                        self.send(401, "application/json", body, [("WWW-Authenticate", "Bearer")])
                        return
                if state_file:
                    body = Path(state_file).read_bytes()
                else:
                    body = json.dumps(world.state(), ensure_ascii=False).encode()
                self.send(200, "application/json; charset=utf-8", body)
            else:
                self.send(404, "text/plain; charset=utf-8", b"not found\n")

        do_HEAD = do_GET

        def log_message(self, fmt, *args):     # quiet: one poll a second would flood the terminal
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--page", default=str(DEFAULT_PAGE), help="the HTML page to serve at /")
    ap.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /api/state")
    ap.add_argument("--empty", action="store_true", help="no devices and no samples (a server that just started)")
    ap.add_argument("--state", metavar="FILE", help="serve this JSON file verbatim as /api/state (re-read each time)")
    ap.add_argument("--odd-names", action="store_true", help="give one device a name with quotes and markup (XSS check)")
    args = ap.parse_args()
    world = World(args.empty, args.odd_names)
    srv = ThreadingHTTPServer((args.host, args.port), make_handler(world, args.page, args.token, args.state))
    print(f"mock monitor on http://{args.host}:{srv.server_address[1]}/"
          + (f"?token={args.token}" if args.token else ""), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The reference's Lyapunov simulation loop (METHOD §8.3-8.4), re-implemented for comparison with
bench/bench_control.cpp.

Per slot: draw the SNR, take the nearest grid point (ties -> lower), pick
argmin_phi -V*A(phi, s) + Z*zeta(phi, s) over the table (np.argmin: first among ties), then
Z <- max(0, Z + mu*(zeta - zeta_max)). Two variants: `numpy` (vectorised over the decisions, one
Python iteration per slot) and `python` (plain loops over the decisions, as a dictionary-driven
script would do it).

  /usr/bin/python3 bench/lyapunov_reference.py --table tests/data/proxy_synthetic.csv
  /usr/bin/python3 bench/lyapunov_reference.py --table T.csv --check DIR/trace.csv --V 100 --mu 10 --zeta-max 0.01
The second form replays the SNRs of a `tokcom optimize --simulate` trace and checks every slot's
decision and queue against it (parity).
"""
import argparse
import csv
import json
import os
import sys
import time

import numpy as np


def read_table(path):
    rows = list(csv.DictReader(open(path)))
    decisions, snrs = [], sorted({float(r["snr_db"]) for r in rows})
    for r in rows:
        key = (float(r["ratio"]), float(r["budget"]))
        if key not in decisions:
            decisions.append(key)
    acc = np.zeros((len(snrs), len(decisions)))
    zeta = np.zeros_like(acc)
    for r in rows:
        s = snrs.index(float(r["snr_db"]))
        d = decisions.index((float(r["ratio"]), float(r["budget"])))
        acc[s, d], zeta[s, d] = float(r["accuracy"]), float(r["zeta"])
    return np.array(snrs), decisions, acc, zeta


def nearest(grid, snr):
    hi = int(np.searchsorted(grid, snr, side="left"))
    if hi == 0:
        return 0
    if hi == len(grid):
        return len(grid) - 1
    return hi if grid[hi] - snr < snr - grid[hi - 1] else hi - 1


def simulate_numpy(grid, acc, zeta, snr, V, mu, zeta_max, window):
    Z, decisions, queue = 0.0, [], []
    acc_sum = zeta_sum = 0.0
    T = len(snr)
    for t in range(T):
        s = nearest(grid, snr[t])
        k = int(np.argmin(-V * acc[s] + Z * zeta[s]))
        queue.append(Z)
        decisions.append(k)
        if t >= T - window:
            acc_sum += acc[s, k]
            zeta_sum += zeta[s, k]
        Z = max(0.0, Z + mu * (zeta[s, k] - zeta_max))
    return acc_sum / window, zeta_sum / window, decisions, queue


def simulate_python(grid, acc_l, zeta_l, snr, V, mu, zeta_max, window):
    Z = 0.0
    acc_sum = zeta_sum = 0.0
    T = len(snr)
    for t in range(T):
        s = nearest(grid, snr[t])
        a_row, z_row = acc_l[s], zeta_l[s]
        best, best_cost = 0, -V * a_row[0] + Z * z_row[0]
        for d in range(1, len(a_row)):
            cost = -V * a_row[d] + Z * z_row[d]
            if cost < best_cost:
                best, best_cost = d, cost
        if t >= T - window:
            acc_sum += a_row[best]
            zeta_sum += z_row[best]
        Z = max(0.0, Z + mu * (z_row[best] - zeta_max))
    return acc_sum / window, zeta_sum / window


def timed(fn, repeats):
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return float(np.median(best))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True)
    ap.add_argument("--V", type=float, default=100.0)
    ap.add_argument("--mu", type=float, default=10.0)
    ap.add_argument("--zeta-max", type=float, default=0.01)
    ap.add_argument("--T", type=int, default=10000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", help="trace.csv of tokcom optimize --simulate to replay and compare")
    ap.add_argument("--json", help="write the timings here")
    a = ap.parse_args()
    grid, decisions, acc, zeta = read_table(a.table)

    if a.check:
        rows = list(csv.DictReader(open(a.check)))
        snr = np.array([float(r["snr_db"]) for r in rows])
        m_acc, m_zeta, dec, queue = simulate_numpy(grid, acc, zeta, snr, a.V, a.mu, a.zeta_max, a.window)
        bad = 0
        for t, r in enumerate(rows):
            ratio, budget = decisions[dec[t]]
            if ratio != float(r["ratio"]) or budget != float(r["budget"]) or \
                    abs(queue[t] - float(r["z_before"])) > 1e-9 * max(1.0, queue[t]):
                bad += 1
                if bad <= 5:
                    print(f"slot {t}: numpy ({ratio}, {budget}, Z={queue[t]}) vs tokcom "
                          f"({r['ratio']}, {r['budget']}, Z={r['z_before']})")
        print(f"parity: {len(rows) - bad}/{len(rows)} slots identical; window accuracy {m_acc:.6f}, zeta {m_zeta:.6f}")
        sys.exit(1 if bad else 0)

    rng = np.random.default_rng(0)
    snr = rng.normal(10.0, 2.5, a.T)
    acc_l, zeta_l = acc.tolist(), zeta.tolist()
    res = {"threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "decisions": len(decisions)}
    t_np = timed(lambda: simulate_numpy(grid, acc, zeta, snr, a.V, a.mu, a.zeta_max, a.window), a.repeats)
    t_py = timed(lambda: simulate_python(grid, acc_l, zeta_l, snr, a.V, a.mu, a.zeta_max, a.window), a.repeats)
    res["BM_Decide/numpy/real_time_ns"] = t_np / a.T * 1e9
    res["BM_Decide/python/real_time_ns"] = t_py / a.T * 1e9
    res["BM_Simulate/slots:%d/numpy/real_time_ms" % a.T] = t_np * 1e3
    res["BM_Simulate/slots:%d/python/real_time_ms" % a.T] = t_py * 1e3
    grid_v, grid_mu = [1, 10, 100, 1e3, 1e4, 1e5], [1, 10, 100]
    t_grid = timed(lambda: [simulate_numpy(grid, acc, zeta, snr, v, m, a.zeta_max, a.window)
                            for v in grid_v for m in grid_mu], max(1, a.repeats // 2))
    res["BM_SearchGrid/numpy/real_time_ms"] = t_grid * 1e3
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()

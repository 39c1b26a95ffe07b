#!/usr/bin/env python3
"""Compares every CSV of a documented run (DOCS) with the same file of a rerun (RUN), ignoring timing
columns (images_per_s, *seconds): prints each file that differs, the largest difference, and a count.
  scripts/compare_runs.py docs/results/imagenette64-study runs/study-imagenette64"""
import csv, os, sys
if len(sys.argv) != 3 or not all(os.path.isdir(d) for d in sys.argv[1:]):
    sys.exit("usage: scripts/compare_runs.py DOCS RUN (two run folders)")
docs, run = sys.argv[1], sys.argv[2]
skip = lambda c: c == "images_per_s" or c.endswith("seconds")
same = diff = missing = 0
for root, _, files in os.walk(docs):
    if "/report" in root: continue
    for f in files:
        if not f.endswith(".csv"): continue
        p = os.path.join(root, f); rel = os.path.relpath(p, docs); q = os.path.join(run, rel)
        if not os.path.exists(q): missing += 1; print("missing", rel); continue
        a = list(csv.DictReader(open(p))); b = list(csv.DictReader(open(q)))
        if len(a) != len(b): diff += 1; print("rows differ", rel, len(a), len(b)); continue
        worst = 0.0; where = None
        for ra, rb in zip(a, b):
            for c in ra:
                if skip(c): continue
                x, y = ra[c], rb.get(c)
                if x == y: continue
                try: d = abs(float(x) - float(y))
                except Exception: d = float("inf")
                if d > worst: worst, where = d, (c, x, y)
        if worst == 0: same += 1
        else: diff += 1; print("differs", rel, worst, where)
print(f"identical {same}, different {diff}, missing {missing}")

"""Rows of a JSCC link table for the results scripts that measure links (jscc_budget128_results.sh,
jscc_lr128_results.sh): accuracy through the link at 0/10/20 dB from the last row of an epochs CSV,
the 95 % Wilson interval at 20 dB, the share of the clean model and the run's wall time."""
import csv

from wilson import wilson

HEADER = ["| link | 0 dB | 10 dB | 20 dB (95 % interval) | % of clean at 20 dB | wall time (s) |",
          "| --- | --- | --- | --- | --- | --- |"]


def last(path):
    """The last row of a CSV file, as a dict."""
    with open(path) as f:
        return list(csv.DictReader(f))[-1]


def row(out, name, label, clean, n):
    """One table row for <out>/<name>.epochs.csv (and <out>/<name>.seconds where it exists)."""
    r = last(f"{out}/{name}.epochs.csv")
    a0, a10, a20 = (float(r[f"val_accuracy_snr{s}"]) for s in (0, 10, 20))
    lo, hi = wilson(a20, n)
    try:
        seconds = open(f"{out}/{name}.seconds").read().strip()
    except OSError:
        seconds = "–"
    return (f"| {label} | {100 * a0:.2f} | {100 * a10:.2f} | {100 * a20:.2f} ({100 * lo:.1f}–{100 * hi:.1f}) | "
            f"{100 * a20 / clean:.1f} | {seconds} |")

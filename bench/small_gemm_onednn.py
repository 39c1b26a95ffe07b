#!/usr/bin/python3
"""Batch-1 ViT products, OpenBLAS against oneDNN (docs/PERF.md "Batch 1"): each linear layer of a
batch-1 forward at 128 px (65 tokens) and at 224 px (197 tokens), width 192, as ATen runs it
(F.linear: the BLAS, tokcom's core) and through oneDNN's fp32 inner product (mkldnn_linear on
oneDNN tensors, weights converted once; and with the input's conversion in and out, as a model
would pay). Median over 5 rounds of 2,000 calls, 2 threads, on tokcom's terms (bench/peer_env.py).

  /usr/bin/python3 bench/small_gemm_onednn.py [--threads 2]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402

if __name__ == "__main__":
    peer_env.same_terms(peer_env.flag_value(sys.argv, "--blas-core"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SHAPES = [(65, 192, 576), (65, 192, 192), (65, 192, 768), (65, 768, 192),
          (197, 192, 576), (197, 192, 192), (197, 192, 768), (197, 768, 192)]


def seconds_per_call(f, calls=2000, rounds=5):
    for _ in range(50):
        f()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blas-core", help="OpenBLAS core (default: the one tokcom uses)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, oneDNN available: {torch.backends.mkldnn.is_available()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, {args.threads} threads\n")
    print("| tokens × in × out | OpenBLAS µs (GFLOP/s) | oneDNN µs (GFLOP/s) | oneDNN with conversions µs |")
    print("| --- | ---: | ---: | ---: |")
    torch.manual_seed(0)
    for m, k, n in SHAPES:
        x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
        xm, wm = x.to_mkldnn(), w.to_mkldnn()
        blas = seconds_per_call(lambda: F.linear(x, w, b))
        dnn = seconds_per_call(lambda: torch._C._nn.mkldnn_linear(xm, wm, b))
        dnn_io = seconds_per_call(lambda: torch._C._nn.mkldnn_linear(x.to_mkldnn(), wm, b).to_dense())
        assert torch.allclose(torch._C._nn.mkldnn_linear(xm, wm, b).to_dense(), F.linear(x, w, b), atol=1e-3)
        flop = 2.0 * m * k * n
        print(f"| {m} × {k} × {n} | {blas * 1e6:.1f} ({flop / blas / 1e9:.0f}) | {dnn * 1e6:.1f} ({flop / dnn / 1e9:.0f}) "
              f"| {dnn_io * 1e6:.1f} |")


if __name__ == "__main__":
    main()

"""The 95 % Wilson score interval of an accuracy, for the scripts that write results READMEs (one
copy; the C++ report has its own in src/tokcom/report)."""
import math

Z95 = 1.959963984540054


def wilson(p, n, z=Z95):
    """(low, high) for a proportion p observed on n trials."""
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)

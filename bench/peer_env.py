"""The PyTorch peer of a C++ benchmark runs on the same terms as tokcom: the same OpenBLAS core and
the glibc malloc thresholds tokcom sets at start-up (core/startup.cpp). Both are read when the
process starts, so `same_terms()` sets them and re-executes the script once; import and call it
before importing torch.

The core is the one tokcom uses on this machine: `tokcom --version` prints it ($TOKCOM_CLI, default
build/tokcom beside this folder); `--blas-core NAME` / $TOKCOM_PEER_BLAS_CORE name another.
"""
import os
import re
import subprocess
import sys

MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
_MARK = "TOKCOM_PEER_ENV"


def tokcom_blas_core():
    cli = os.environ.get("TOKCOM_CLI", os.path.join(os.path.dirname(__file__), "..", "build", "tokcom"))
    try:
        out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"peer_env: cannot ask {cli} for its BLAS core ({e}); build it or pass --blas-core NAME")
    m = re.search(r"^BLAS core: (\S+)", out, re.M)
    if not m:
        sys.exit(f"peer_env: {cli} --version names no BLAS core (is the BLAS OpenBLAS?):\n{out}")
    return m.group(1)


def flag_value(argv, flag):
    """The value of `flag VALUE` or `flag=VALUE` in argv (before argparse runs), or None."""
    for i, a in enumerate(argv):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def same_terms(core=None):
    """Re-executes this script with tokcom's BLAS core and malloc settings, unless already done."""
    if os.environ.get(_MARK):
        return
    core = core or os.environ.get("TOKCOM_PEER_BLAS_CORE") or tokcom_blas_core()
    env = dict(os.environ, **MALLOC, OPENBLAS_CORETYPE=core, **{_MARK: "1"})
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def blas_core_in_use():
    """The core OpenBLAS runs in this process (after torch is imported), as tokcom reports its own."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return ""
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode().strip()

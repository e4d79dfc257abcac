"""The lookup tables of the online engine, made once at export and stored in the bundle.

Why stored, not recomputed at load: `exp` and `log` differ in their last bits between libm and
numpy builds and CPU code paths; a table entry one unit off on the decoder's machine would derail
the range decoder. Stored as integers, they are the same everywhere.

- `cdf` (scales x span) uint16: the logistic CDF, times 2**16 - 256, at offsets d / 16 pixel from
  the prediction (d from -span/2), one row per scale (log-spaced from 0.15 pixel, ratio 1.08). A
  symbol's cumulative frequency is cdf[row, edge - mu] + its value, so every symbol gets >= 1.
- `scale_of` (4096,) int32: table row for a mean |residual| (in 1/16 pixel) of a context.
- `buckets` int64: the log-spaced edges of the error-energy contexts (1/16 pixel units).
- `code_length` (65537,) int32: 256 * -log2(f / 2**16), for the scale search.
"""

from pathlib import Path

import numba
import numpy as np
from safetensors.numpy import load_file, save_file

TABLES_FILE = "tables.safetensors"
SCALES, SCALE_0, SCALE_RATIO = 80, 0.15, 1.08
SPAN = 272  # pixels each side of the prediction
MEAN_ABS_PER_SCALE = 1.386  # a logistic's mean |x| is 2 ln 2 times its scale


SH = 4  # predictions in 1/16 pixel


@numba.njit(cache=True, nogil=True, inline="always")
def cum(cdf, offset, mu, x):
    """Cumulative frequency of symbol x (0..256) under the CDF row `cdf` centred at mu (1/16 pixel)."""
    if x <= 0:
        return 0
    if x >= 256:
        return 1 << 16
    d = (x << SH) - (1 << (SH - 1)) - mu + offset
    if d < 0:
        d = 0
    elif d >= cdf.shape[0]:
        d = cdf.shape[0] - 1
    return np.int64(cdf[d]) + x


@numba.njit(cache=True, nogil=True, inline="always")
def find(cdf, offset, mu, lo, hi, t):
    """The symbol x in lo..hi-1 whose interval holds cumulative frequency t (the decoder's search)."""
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cum(cdf, offset, mu, mid) <= t:
            lo = mid
        else:
            hi = mid
    return lo


def make_tables() -> dict[str, np.ndarray]:
    total = (1 << 16) - 256
    scales = SCALE_0 * SCALE_RATIO ** np.arange(SCALES)
    d = np.arange(-SPAN * 16, SPAN * 16) / 16.0
    with np.errstate(over="ignore"):
        cdf = np.floor(total / (1 + np.exp(-d[None, :] / scales[:, None])))
    mean_abs = np.maximum(np.arange(4096) / 16.0, 0.05)
    scale_of = np.abs(np.log(MEAN_ABS_PER_SCALE * scales[None, :] / mean_abs[:, None])).argmin(1)
    edges = [6]
    while edges[-1] < 12000:
        edges.append(int(edges[-1] * 1.35) + 1)
    code_length = np.zeros(65537, dtype=np.int32)
    code_length[1:] = np.floor(256 * np.log2(65536 / np.arange(1, 65537)))
    return {"cdf": cdf.astype(np.uint16), "scale_of": scale_of.astype(np.int32),
            "buckets": np.array(edges, dtype=np.int64), "code_length": code_length}


def save_tables(folder: Path, net=None) -> None:
    """The tables, and a trained network's integer weights (trainer.engine.models.network.Net) as
    net_w1, net_b1, net_w2, net_b2, net_shifts where the bundle runs one."""
    extra = {} if net is None else {f"net_{k}": np.ascontiguousarray(v, np.int64) for k, v in net._asdict().items()}
    save_file({**make_tables(), **extra}, str(Path(folder) / TABLES_FILE))


def load_tables(folder: Path) -> dict[str, np.ndarray]:
    tables = load_file(str(Path(folder) / TABLES_FILE))
    expected = {"cdf": np.uint16, "scale_of": np.int32, "buckets": np.int64, "code_length": np.int32}
    for name, dtype in expected.items():
        if name not in tables or tables[name].dtype != dtype:
            raise ValueError(f"{folder}: {TABLES_FILE} lacks a {np.dtype(dtype).name} table {name!r}")
    if tables["cdf"].ndim != 2 or tables["code_length"].shape != (65537,) or tables["scale_of"].max() >= len(tables["cdf"]):
        raise ValueError(f"{folder}: {TABLES_FILE} tables have the wrong shapes")
    net = {k: tables[k] for k in tables if k.startswith("net_")}
    if net:
        _check_network(folder, net)
    return {k: np.ascontiguousarray(tables[k]) for k in list(expected) + sorted(net)}


def _check_network(folder: Path, net: dict) -> None:
    """A stored network's shapes and ranges, so a damaged bundle is refused in one line, never run."""
    from trainer.engine.models import network

    names = {f"net_{k}" for k in network.Net._fields}
    ok = set(net) == names and all(v.dtype == np.int64 for v in net.values())
    if ok:
        slots, hidden, d = net["net_w1"].shape
        ok = ((slots, d) == (network.SLOTS, network.D) and 1 <= hidden <= 1024
              and net["net_b1"].shape == (slots, hidden) and net["net_w2"].shape == (slots, hidden)
              and net["net_b2"].shape == (slots,) and net["net_shifts"].shape == (slots, 2)
              and net["net_shifts"].min() >= 0 and net["net_shifts"].max() <= 40
              and max(np.abs(net["net_w1"]).max(), np.abs(net["net_w2"]).max()) <= 127)
    if not ok:
        raise ValueError(f"{folder}: {TABLES_FILE} holds a network of the wrong shapes or ranges")

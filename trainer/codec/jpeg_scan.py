"""A baseline JPEG file as its parts: the bytes before the scan, the quantized DCT coefficients of
each component, the bytes after the scan, and back to the very same file (issue 34, item 1).

pixlm's own JPEG coder (trainer.engine.jpeg_model) codes the coefficients; this module turns a file
into them and them back into the file. Only what it can restore byte for byte is taken: one
Huffman-coded sequential scan (SOF0 / SOF1, 8-bit) holding every component, with or without
restart markers. `split` decodes the scan, re-encodes it at once and compares: any file whose
encoder did something else (padding bits other than ones, a longer code than needed, EOB after a
63rd coefficient, ...) raises Unsupported and is left to the other coders (trainer.codec.jpeg).
Progressive, arithmetic-coded, 12-bit and multi-scan files are Unsupported too.

Coefficients are kept in the scan's own (zigzag) order, int16, in one flat array (`values`: 2 bytes
a coefficient, so a 24-megapixel photo's take ~72 MB) viewed per component as (block rows, block
columns, 64) over the blocks the scan codes (whole MCUs in an interleaved scan).
"""

from dataclasses import dataclass

import numba
import numpy as np


class Unsupported(ValueError):
    """A JPEG this module does not restore byte for byte (another coder takes it)."""


@dataclass
class Scan:
    """A baseline JPEG file, parsed."""
    head: bytes  # SOI .. the end of the SOS segment
    tail: bytes  # from the marker after the scan (EOI, and whatever trails it)
    width: int
    height: int
    sampling: list  # (h, v) per component, in scan order
    quant: list  # per component: its quantization table, 64 values in zigzag order
    restart: int  # MCUs per restart interval (0: none)
    tables: np.ndarray  # (8, 2, 256) int64: per table slot (DC 0-3, AC 4-7): code, length per symbol
    slots: np.ndarray  # (components, 2): DC slot, AC slot
    values: np.ndarray  # every component's coefficients one after another, int16
    coefficients: list  # per component: a view of `values`, (rows, cols, 64), zigzag order


def _segments(data: bytes):
    """(marker, start of its payload, end) of each segment up to and including SOS."""
    if data[:2] != b"\xff\xd8":
        raise Unsupported("no SOI")
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise Unsupported("marker expected")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise Unsupported("segment runs past the file")
        yield marker, pos + 4, end
        if marker == 0xDA:
            return
        pos = end


def parse(data: bytes) -> dict:
    """The header's facts, or Unsupported (a damaged header too)."""
    try:
        return _parse(data)
    except (IndexError, ValueError) as err:
        if isinstance(err, Unsupported):
            raise
        raise Unsupported(f"damaged header ({err})") from None


def _parse(data: bytes) -> dict:
    quant, huff, frame, restart, scan = {}, {}, None, 0, None
    for marker, a, b in _segments(data):
        seg = data[a:b]
        if marker == 0xDB:
            i = 0
            while i < len(seg):
                precision, tid = seg[i] >> 4, seg[i] & 15
                if precision != 0:
                    raise Unsupported("16-bit quantization table")
                quant[tid] = np.frombuffer(seg[i + 1:i + 65], dtype=np.uint8).astype(np.int64)
                if quant[tid].shape[0] != 64:
                    raise Unsupported("quantization table cut short")
                i += 65
        elif marker == 0xC4:
            i = 0
            while i < len(seg):
                cls, tid = seg[i] >> 4, seg[i] & 15
                counts = list(seg[i + 1:i + 17])
                values = list(seg[i + 17:i + 17 + sum(counts)])
                if cls > 1 or tid > 3 or len(values) != sum(counts):
                    raise Unsupported("Huffman table")
                huff[(cls, tid)] = (counts, values)
                i += 17 + sum(counts)
        elif marker in (0xC0, 0xC1):
            if frame is not None or seg[0] != 8:
                raise Unsupported("not an 8-bit frame")
            height, width, n = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
            comps = [(seg[6 + 3 * j], seg[7 + 3 * j] >> 4, seg[7 + 3 * j] & 15, seg[8 + 3 * j]) for j in range(n)]
            frame = (width, height, comps)
        elif 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise Unsupported("not a baseline (sequential Huffman) frame")
        elif marker == 0xDD:
            restart = int.from_bytes(seg[:2], "big")
        elif marker == 0xDA:
            n = seg[0]
            scan = ([(seg[1 + 2 * j], seg[2 + 2 * j] >> 4, seg[2 + 2 * j] & 15) for j in range(n)],
                    tuple(seg[1 + 2 * n:4 + 2 * n]), b)
    if frame is None or scan is None:
        raise Unsupported("no frame or no scan")
    width, height, comps = frame
    members, (ss, se, a), scan_start = scan
    if (ss, se, a) != (0, 63, 0) or len(members) != len(comps) or not 1 <= len(comps) <= 4 or width == 0 \
            or height == 0:
        raise Unsupported("the first scan does not hold every component")
    by_id = {c[0]: c for c in comps}
    order = []
    for cid, td, ta in members:
        if cid not in by_id or (0, td) not in huff or (1, ta) not in huff or by_id[cid][3] not in quant:
            raise Unsupported("scan component without its tables")
        order.append((by_id[cid], td, ta))
    return {"width": width, "height": height, "order": order, "quant": quant, "huff": huff,
            "restart": restart, "scan_start": scan_start}


def _code_table(counts, values) -> np.ndarray:
    """(2, 256): each symbol's canonical code and length (length 0: not in the table)."""
    out = np.zeros((2, 256), dtype=np.int64)
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            symbol = values[k]
            if out[1, symbol]:
                raise Unsupported("a symbol twice in one Huffman table")
            out[0, symbol], out[1, symbol] = code, length
            code += 1
            k += 1
        code <<= 1
    if code > (1 << 17):
        raise Unsupported("Huffman table overfull")
    return out


def _mcu_grid(width, height, sampling):
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    if len(sampling) == 1:  # a one-component scan is not interleaved: its own blocks, no MCU padding
        return 1, 1, [(-(-height // 8), -(-width // 8))]
    mcux, mcuy = -(-width // (8 * hmax)), -(-height // (8 * vmax))
    return mcux, mcuy, [(mcuy * v, mcux * h) for h, v in sampling]


@numba.njit(cache=True, nogil=True)
def _lookup(tables):
    """Per table slot and code length: the first code, the index of its first symbol, how many
    codes; and the symbols in code order (canonical Huffman decoding, T.81 F.2.2.3)."""
    first = np.full((8, 17), -1, dtype=np.int64)
    index = np.zeros((8, 17), dtype=np.int64)
    count = np.zeros((8, 17), dtype=np.int64)
    symbols = np.full((8, 256), -1, dtype=np.int64)
    for s in range(8):
        for sym in range(256):
            length = tables[s, 1, sym]
            if length:
                count[s, length] += 1
                if first[s, length] < 0 or tables[s, 0, sym] < first[s, length]:
                    first[s, length] = tables[s, 0, sym]
        k = 0
        for length in range(1, 17):
            index[s, length] = k
            k += count[s, length]
        for sym in range(256):
            length = tables[s, 1, sym]
            if length:
                symbols[s, index[s, length] + tables[s, 0, sym] - first[s, length]] = sym
    return first, index, count, symbols


@numba.njit(cache=True, nogil=True)
def _bit(data, end, st):
    """The scan's next bit; st = [position, byte, bits left in it, past the data]. Stuffed zeros
    are skipped; at a marker or the end the bits are ones (padding; the re-encode checks them)."""
    if st[2] == 0:
        pos = st[0]
        byte = 0xFF
        if st[3] or pos >= end:
            st[3] = 1
        else:
            byte = data[pos]
            if byte != 0xFF:
                st[0] = pos + 1
            elif pos + 1 < end and data[pos + 1] == 0:
                st[0] = pos + 2
            else:
                st[3] = 1
        st[1] = byte
        st[2] = 8
    st[2] -= 1
    return (st[1] >> st[2]) & 1


@numba.njit(cache=True, nogil=True)
def _symbol(data, end, st, slot, first, index, count, symbols):
    """The next Huffman symbol of table `slot`, or -1 where no code of 16 bits or fewer matches."""
    code = 0
    for length in range(1, 17):
        code = (code << 1) | _bit(data, end, st)
        if first[slot, length] >= 0 and first[slot, length] <= code < first[slot, length] + count[slot, length]:
            return symbols[slot, index[slot, length] + code - first[slot, length]]
    return -1


@numba.njit(cache=True, nogil=True)
def _block(data, end, st, out, base, dc_slot, ac_slot, prev_dc, first, index, count, symbols):
    """One block's coefficients into out[base:base + 64] (zigzag); (0, its DC) or (error code, 0)."""
    k = 0
    dc = prev_dc
    while k < 64:
        sym = _symbol(data, end, st, dc_slot if k == 0 else ac_slot, first, index, count, symbols)
        if sym < 0:
            return 2, 0
        size, run = (sym, 0) if k == 0 else (sym & 15, sym >> 4)
        if k > 0 and size == 0:
            if run != 15:
                break  # EOB
            k += 16  # ZRL
            if k > 64:
                return 3, 0
            continue
        if size > 15:
            return 3, 0
        value = 0
        for _ in range(size):
            value = (value << 1) | _bit(data, end, st)
        if size > 0 and value < (1 << (size - 1)):
            value -= (1 << size) - 1
        k += run
        if k > 63:
            return 3, 0
        if k == 0:
            dc += value
            value = dc
        out[base + k] = value
        k += 1
    return 0, dc


@numba.njit(cache=True, nogil=True)
def _decode(data, pos, end, tables, slots, sampling, mcux, mcuy, blocks_x, restart, out, offsets):
    """Huffman-decode the scan from `pos`; (position after it, 0) or (-1, error code: 1 restart
    marker, 2 Huffman code, 3 run past the block, 4 truncated)."""
    first, index, count, symbols = _lookup(tables)
    ncomp = slots.shape[0]
    pred = np.zeros(ncomp, dtype=np.int64)
    st = np.array([pos, 0, 0, 0], dtype=np.int64)
    for m in range(mcux * mcuy):
        if restart > 0 and m > 0 and m % restart == 0:
            at = st[0]
            if at + 1 >= end or data[at] != 0xFF or data[at + 1] != 0xD0 + ((m // restart - 1) & 7):
                return -1, 1
            st[:] = (at + 2, 0, 0, 0)
            pred[:] = 0
        my, mx = m // mcux, m % mcux
        for c in range(ncomp):
            h, v = sampling[c, 0], sampling[c, 1]
            for by in range(v):
                for bx in range(h):
                    base = offsets[c] + ((my * v + by) * blocks_x[c] + mx * h + bx) * 64
                    err, pred[c] = _block(data, end, st, out, base, slots[c, 0], slots[c, 1], pred[c], first, index,
                                          count, symbols)
                    if err:
                        return -1, err
    if st[3]:
        return -1, 4  # the scan ran into a marker: a truncated file
    return st[0], 0


@numba.njit(cache=True, nogil=True)
def _put(out, n, acc, nacc, code, length):
    """Append `length` bits of code; bytes 0xFF are followed by a stuffed 0. (n, acc, nacc)."""
    acc = (acc << length) | code
    nacc += length
    while nacc >= 8:
        nacc -= 8
        byte = (acc >> nacc) & 0xFF
        out[n] = byte
        n += 1
        if byte == 0xFF:
            out[n] = 0
            n += 1
    acc &= (1 << nacc) - 1
    return n, acc, nacc


@numba.njit(cache=True, nogil=True)
def _encode(coefs, offsets, tables, slots, sampling, mcux, mcuy, blocks_x, restart, out):
    """The scan's bytes of the coefficients (libjpeg's way: ones as padding); their count."""
    ncomp = slots.shape[0]
    n, acc, nacc = 0, 0, 0
    pred = np.zeros(ncomp, dtype=np.int64)
    total = mcux * mcuy
    for m in range(total):
        if restart > 0 and m > 0 and m % restart == 0:
            if nacc > 0:
                n, acc, nacc = _put(out, n, acc, nacc, (1 << (8 - nacc)) - 1, 8 - nacc)
            out[n] = 0xFF
            out[n + 1] = 0xD0 + ((m // restart - 1) & 7)
            n += 2
            for c in range(ncomp):
                pred[c] = 0
        my, mx = m // mcux, m % mcux
        for c in range(ncomp):
            h, v = sampling[c, 0], sampling[c, 1]
            dslot, aslot = slots[c, 0], slots[c, 1]
            for by in range(v):
                for bx in range(h):
                    base = offsets[c] + ((my * v + by) * blocks_x[c] + mx * h + bx) * 64
                    diff = coefs[base] - pred[c]
                    pred[c] = coefs[base]
                    a = -diff if diff < 0 else diff
                    size = 0
                    while a >> size:
                        size += 1
                    n, acc, nacc = _put(out, n, acc, nacc, tables[dslot, 0, size], tables[dslot, 1, size])
                    if size:
                        bits = diff if diff >= 0 else diff + (1 << size) - 1
                        n, acc, nacc = _put(out, n, acc, nacc, bits, size)
                    run = 0
                    for k in range(1, 64):
                        value = coefs[base + k]
                        if value == 0:
                            run += 1
                            continue
                        while run > 15:
                            n, acc, nacc = _put(out, n, acc, nacc, tables[aslot, 0, 0xF0], tables[aslot, 1, 0xF0])
                            run -= 16
                        a = -value if value < 0 else value
                        size = 0
                        while a >> size:
                            size += 1
                        sym = (run << 4) | size
                        n, acc, nacc = _put(out, n, acc, nacc, tables[aslot, 0, sym], tables[aslot, 1, sym])
                        bits = value if value >= 0 else value + (1 << size) - 1
                        n, acc, nacc = _put(out, n, acc, nacc, bits, size)
                        run = 0
                    if run > 0:
                        n, acc, nacc = _put(out, n, acc, nacc, tables[aslot, 0, 0], tables[aslot, 1, 0])
    if nacc > 0:
        n, acc, nacc = _put(out, n, acc, nacc, (1 << (8 - nacc)) - 1, 8 - nacc)
    return n


def geometry(scan: Scan) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(offsets in `values`, block rows, block columns, coefficient count) of each component."""
    rows = np.array([c.shape[0] for c in scan.coefficients], dtype=np.int64)
    cols = np.array([c.shape[1] for c in scan.coefficients], dtype=np.int64)
    sizes = rows * cols * 64
    return np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64), rows, cols, int(sizes.sum())


def _scan_arrays(scan: Scan):
    """(sampling as the scan walks it: 1x1 for a one-component scan, offsets, block columns, count)."""
    sampling = np.array(scan.sampling, dtype=np.int64)
    if len(scan.sampling) == 1:
        sampling[:] = 1
    offsets, _, cols, total = geometry(scan)
    return sampling, offsets, cols, total


def layout(head: bytes, tail: bytes = b"") -> Scan:
    """The Scan of a file's head (SOI .. SOS), its coefficients all zero; Unsupported for a kind this
    module does not restore."""
    facts = parse(head)
    if facts["scan_start"] != len(head):
        raise Unsupported("bytes after the scan header")
    order = facts["order"]
    sampling = [(c[1], c[2]) for c, _, _ in order]
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
        raise Unsupported("sampling factors")
    tables = np.zeros((8, 2, 256), dtype=np.int64)
    slots = np.zeros((len(order), 2), dtype=np.int64)
    for j, (_, td, ta) in enumerate(order):
        tables[td] = _code_table(*facts["huff"][(0, td)])
        tables[4 + ta] = _code_table(*facts["huff"][(1, ta)])
        slots[j] = td, 4 + ta
    _, _, shapes = _mcu_grid(facts["width"], facts["height"], sampling)
    values = np.zeros(sum(r * c * 64 for r, c in shapes), dtype=np.int16)
    views, at = [], 0
    for r, c in shapes:
        views.append(values[at:at + r * c * 64].reshape(r, c, 64))
        at += r * c * 64
    return Scan(head, tail, facts["width"], facts["height"], sampling, [facts["quant"][c[3]] for c, _, _ in order],
                facts["restart"], tables, slots, values, views)


def _mcus(scan: Scan) -> tuple[int, int]:
    if len(scan.sampling) == 1:  # one block an MCU
        return scan.coefficients[0].shape[1], scan.coefficients[0].shape[0]
    mcux, mcuy, _ = _mcu_grid(scan.width, scan.height, scan.sampling)
    return mcux, mcuy


def in_range(values: np.ndarray) -> bool:
    """Every coefficient within what an 8-bit baseline JPEG holds (|v| <= 2047)."""
    return not ((values > 2047) | (values < -2047)).any()


def split(data: bytes) -> Scan:
    """The file's parts; Unsupported unless `join` of them gives back `data` exactly."""
    facts = parse(data)
    scan = layout(data[:facts["scan_start"]])
    samp, offsets, blocks_x, total = _scan_arrays(scan)
    mcux, mcuy = _mcus(scan)
    values = scan.values
    end, err = _decode(np.frombuffer(data, dtype=np.uint8), facts["scan_start"], len(data), scan.tables, scan.slots,
                       samp, mcux, mcuy, blocks_x, scan.restart, values, offsets)
    if err:
        raise Unsupported(("", "restart marker", "Huffman code", "run past 64", "truncated scan")[err])
    if not in_range(values):
        raise Unsupported("coefficient out of range")
    scan.tail = data[end:]
    if not scan.tail.startswith(b"\xff\xd9") or join(scan) != data:
        raise Unsupported("not restored byte for byte")
    return scan


def scan_bytes(scan: Scan) -> bytes:
    """The entropy-coded scan of the coefficients."""
    samp, offsets, blocks_x, total = _scan_arrays(scan)
    mcux, mcuy = _mcus(scan)
    out = np.zeros(total * 8 + 1024, dtype=np.uint8)  # at most 16 + 11 bits a coefficient, each byte stuffed
    n = _encode(scan.values, offsets, scan.tables, scan.slots, samp, mcux, mcuy, blocks_x, scan.restart, out)
    return out[:n].tobytes()


def join(scan: Scan) -> bytes:
    """The file of the parts."""
    return scan.head + scan_bytes(scan) + scan.tail

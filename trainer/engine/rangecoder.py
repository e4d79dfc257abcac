"""A byte-oriented range coder for cumulative frequencies of totals up to 2**16, compiled (numba).

Why not constriction here: the online engine decides each symbol's distribution from the symbols
before it, one subpixel at a time, so the coder is called ~10^6 times per image from compiled code;
a Python call per symbol would cost more than the whole model. The coder is the classic carry-
propagating range coder of LZMA (Subbotin/Schindler style): 32-bit range, 64-bit low with a cached
byte for carries, renormalized when the range falls below 2**24. All integer arithmetic: the same
bytes on every machine.

The state lives in small int64 arrays so that the model kernels can pass it around:
encoder `state = [low, range, cache, cache_size, position]`, decoder `[code, range, position]`.
Reading past the end of a damaged payload reads zeros: the decoder never fails or loops, it
decodes other pixels, and the pixel CRC refuses them.
"""

import numba
import numpy as np

TOTAL_BITS = 16  # cumulative frequencies sum to 2**16
TOP = 1 << 24
MASK32 = (1 << 32) - 1


def new_encoder(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """(state, output buffer) of an encoder that may write up to `capacity` bytes."""
    return np.array([0, MASK32, 0, 1, 0], dtype=np.int64), np.zeros(capacity + 16, dtype=np.uint8)


@numba.njit(cache=True, nogil=True)
def _shift_low(state, out):
    low = state[0]
    if low < 0xFF000000 or low > MASK32:
        carry = low >> 32
        temp = state[2]
        while True:
            pos = state[4]
            if pos < out.shape[0]:
                out[pos] = (temp + carry) & 0xFF
            state[4] = pos + 1
            temp = 0xFF
            state[3] -= 1
            if state[3] == 0:
                break
        state[2] = (low >> 24) & 0xFF
    state[3] += 1
    state[0] = (low & 0x00FFFFFF) << 8


@numba.njit(cache=True, nogil=True)
def encode(state, out, cum, freq):
    """Code the interval [cum, cum + freq) of 2**16."""
    encode_of(state, out, cum, freq, 1 << TOTAL_BITS)


@numba.njit(cache=True, nogil=True)
def encode_of(state, out, cum, freq, total):
    """Code the interval [cum, cum + freq) of `total` (at most 2**16)."""
    r = state[1] // total
    state[0] += r * cum
    state[1] = r * freq
    while state[1] < TOP:
        state[1] = (state[1] << 8) & MASK32
        _shift_low(state, out)


@numba.njit(cache=True, nogil=True)
def finish(state, out) -> int:
    """Flush; returns the number of bytes written."""
    for _ in range(5):
        _shift_low(state, out)
    return state[4]


def new_decoder(payload: bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(payload, dtype=np.uint8) if isinstance(payload, (bytes, bytearray)) else payload
    state = np.array([0, MASK32, 0], dtype=np.int64)
    start(state, data)
    return state, data


@numba.njit(cache=True, nogil=True)
def _byte(state, data) -> int:
    pos = state[2]
    state[2] = pos + 1
    return data[pos] if pos < data.shape[0] else 0


@numba.njit(cache=True, nogil=True)
def start(state, data):
    for _ in range(5):
        state[0] = ((state[0] << 8) | _byte(state, data)) & MASK32


@numba.njit(cache=True, nogil=True)
def target(state) -> int:
    """Where the next symbol's interval lies, in 0 .. 2**16 - 1 (then call `consume`)."""
    return target_of(state, 1 << TOTAL_BITS)


@numba.njit(cache=True, nogil=True)
def target_of(state, total) -> int:
    """`target` for symbols whose frequencies sum to `total` (then call `consume_of`)."""
    v = state[0] // (state[1] // total)
    return v if v < total else total - 1


@numba.njit(cache=True, nogil=True)
def consume_of(state, data, cum, freq, total):
    r = state[1] // total
    state[0] -= r * cum
    state[1] = r * freq
    while state[1] < TOP:
        state[0] = ((state[0] << 8) | _byte(state, data)) & MASK32
        state[1] = (state[1] << 8) & MASK32


@numba.njit(cache=True, nogil=True)
def consume(state, data, cum, freq):
    consume_of(state, data, cum, freq, 1 << TOTAL_BITS)


@numba.njit(cache=True, nogil=True)
def encode_bit(state, out, bit, p16):
    """Code a binary decision whose 1 has probability p16 / 2**16 (1 .. 65535)."""
    if bit:
        encode(state, out, 0, p16)
    else:
        encode(state, out, p16, 65536 - p16)


@numba.njit(cache=True, nogil=True)
def decode_bit(state, data, p16) -> int:
    """The binary decision `encode_bit` coded with the same p16."""
    bit = 1 if target(state) < p16 else 0
    if bit:
        consume(state, data, 0, p16)
    else:
        consume(state, data, p16, 65536 - p16)
    return bit

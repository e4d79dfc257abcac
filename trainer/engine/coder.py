"""Images to payloads and back with the online engine: stripes, threads, the payload layout.

An image is cut into stripes of `stripe_rows` rows (the bundle's setting; 0: one stripe), each
coded from a fresh state by its own range coder, so stripes are coded on separate threads (the
compiled kernel releases the GIL). Payload: one byte of the encoder's choices (bit 0: parity
contexts, bit 1: least squares, bits 2-3: the order its first three channels were coded in, an
index into settings.ORDERS, bit 4: those channels coded as JPEG's Y, Cb, Cr, trainer.engine.colour;
bit 5: as the planes of a lattice found for the image, trainer.engine.lattice, whose 96 bytes
follow), for every stripe but the last its byte length (4 bytes, big-endian), then the stripes'
bytes in order.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from trainer.engine import colour, kernel, lattice, rangecoder
from trainer.engine.models import network
from trainer.engine.settings import ORDERS, Choice, EngineSettings
from trainer.errors import PixlmError


class PayloadError(PixlmError):
    """A payload whose stripe layout does not fit the image."""


def stripes(height: int, settings: EngineSettings) -> list[tuple[int, int]]:
    rows = settings.stripe_rows or height
    return [(y, min(height, y + rows)) for y in range(0, height, rows)] or [(0, 0)]


def _map(fn, items, threads: int | None):
    if threads == 1 or len(items) == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(threads or None) as pool:
        return list(pool.map(fn, items))


SAMPLE_ROWS = 64  # rows the encoder codes every way it may choose, to choose


# the spaces the first three channels may be coded in: as given, JPEG's planes, a lattice's planes
RGB, YCC, LATTICE = "rgb", "ycc", "lattice"


def choices(settings: EngineSettings, channels: int, space: str | None = None) -> list[Choice]:
    """The ways to code an image: each "2" (auto) of `ols` and `parity` both ways, with
    `channel_order` each of `ORDERS`, with `colour` and `lattice` (images of 3 or more channels)
    the first three channels as R, G, B or as planes: the decoder's list (`space` None) has every
    space, the encoder's only the one the image has."""
    orders = range(len(ORDERS)) if settings.channel_order and channels >= 3 else (0,)
    # an image with planes is coded as them (the lattice alone is worth ~2 bits a pixel); the
    # decoder accepts any
    spaces = [RGB] + [YCC] * bool(settings.colour and channels >= 3) + [LATTICE] * bool(settings.lattice and channels >= 3)
    return [Choice(replace(settings, ols=ols, parity=parity), order, kind == YCC, kind == LATTICE)
            for ols in ((0, 1) if settings.ols == 2 else (settings.ols,))
            for parity in ((0, 1) if settings.parity == 2 else (settings.parity,))
            for order in orders for kind in (spaces if space is None else (space,))]


def planes(image: np.ndarray, settings: EngineSettings) -> tuple[str, np.ndarray, bytes]:
    """The space the encoder codes the image in, the image in it, and the bytes that say how to
    map it back (a lattice's)."""
    if image.shape[2] >= 3 and settings.colour:
        ycc = colour.to_ycc(image)
        if ycc is not None:
            return YCC, ycc, b""
    if image.shape[2] >= 3 and settings.lattice:
        found = lattice.fit(image)
        if found is not None:
            return LATTICE, found[1], found[0].to_bytes()
    return RGB, image, b""


def choose(coded: np.ndarray, space: str, settings: EngineSettings, tables: dict,
           threads: int | None = None) -> Choice:
    """How to code this image (`coded`: in `space`): the only choice, or the one that codes the
    image's middle rows smallest. Only the encoder chooses; the payload's first byte records it."""
    options = choices(settings, coded.shape[2], space)
    if len(options) == 1:
        return options[0]
    middle = coded.shape[0] // 2
    rows = slice(max(0, middle - SAMPLE_ROWS // 2), middle + SAMPLE_ROWS // 2)
    sizes = _map(lambda option: len(_encode(np.ascontiguousarray(coded[rows][:, :, option.permutation(coded.shape[2])]),
                                            replace(option.settings, stripe_rows=0), tables, 1, None)[0]), options, threads)
    return options[int(np.argmin(sizes))]


def encode(image: np.ndarray, settings: EngineSettings, tables: dict, threads: int | None = None,
           lengths: np.ndarray | None = None) -> tuple[bytes, float]:
    """(payload, ideal code length in bits) of an (H, W, C) uint8 image; `lengths` (H, W, C)
    float32, if given, receives each subpixel's code length."""
    # one compiled signature for both directions: a C-contiguous, writable uint8 array (a PIL
    # image's or a memory map's read-only view is copied)
    image = np.require(image, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
    space, coded, mapping = planes(image, settings)
    chosen = choose(coded, space, settings, tables, threads)
    order = chosen.permutation(image.shape[2])
    keep = None if lengths is None else np.zeros(image.shape, dtype=np.float32)
    payload, ideal = _encode(np.ascontiguousarray(coded[:, :, order]), chosen.settings, tables, threads, keep)
    if lengths is not None:  # reported per channel of the image given
        lengths[:, :, order] = keep
    return chosen.byte() + mapping + payload, ideal


def _encode(image, settings: EngineSettings, tables: dict, threads, lengths) -> tuple[bytes, float]:
    params, t = settings.as_params(), _tables(tables)
    keep = lengths if lengths is not None else np.zeros((1, 1, 1), dtype=np.float32)
    none64, none8 = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint8)

    def one(stripe):
        y0, y1 = stripe
        state, out = rangecoder.new_encoder(2 * (y1 - y0) * image.shape[1] * image.shape[2] + 64)
        ideal = kernel.code_stripe(image, y0, y1, t, kernel.Stream(False, state, out, none64, none8), params, keep)
        return out[:rangecoder.finish(state, out)].tobytes(), ideal

    coded = _map(one, stripes(image.shape[0], settings), threads)
    header = b"".join(len(data).to_bytes(4, "big") for data, _ in coded[:-1])
    return header + b"".join(data for data, _ in coded), sum(ideal for _, ideal in coded) / 256.0


def _tables(tables: dict) -> kernel.Tables:
    return kernel.Tables(tables["cdf"], tables["scale_of"], tables["buckets"], tables["code_length"],
                         network.from_tables(tables))


def decode(payload: bytes, shape: tuple[int, int, int], settings: EngineSettings, tables: dict,
           threads: int | None = None) -> np.ndarray:
    image = np.zeros(shape, dtype=np.uint8)
    chosen = {option.byte(): option for option in choices(settings, shape[2])}
    if payload[:1] not in chosen:
        raise PayloadError("the payload's first byte is not a choice this bundle's encoder makes")
    choice, payload = chosen[payload[:1]], payload[1:]
    if choice.lattice:
        try:
            mapping = lattice.Lattice.from_bytes(payload)
        except lattice.LatticeError as error:
            raise PayloadError(str(error)) from None
        payload = payload[lattice.BYTES:]
    settings = choice.settings
    parts = stripes(shape[0], settings)
    head = 4 * (len(parts) - 1)
    sizes = [int.from_bytes(payload[4 * i:4 * i + 4], "big") for i in range(len(parts) - 1)]
    if len(payload) < head or head + sum(sizes) > len(payload):
        raise PayloadError(f"the payload's stripe sizes ({sum(sizes)} bytes) exceed its {len(payload)} bytes")
    starts = np.cumsum([head] + sizes)
    chunks = [payload[a:b] for a, b in zip(starts, list(starts[1:]) + [len(payload)])]
    params, t = settings.as_params(), _tables(tables)
    none64, none8, keep = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint8), np.zeros((1, 1, 1), np.float32)

    def one(item):
        (y0, y1), chunk = item
        state, data = rangecoder.new_decoder(np.frombuffer(chunk, dtype=np.uint8))
        kernel.code_stripe(image, y0, y1, t, kernel.Stream(True, none64, none8, state, data), params, keep)

    _map(one, list(zip(parts, chunks)), threads)
    # the channels back in the image's order (a fancy index on the last axis is not C-contiguous)
    image = np.ascontiguousarray(image[:, :, np.argsort(choice.permutation(shape[2]))])
    return colour.to_rgb(image) if choice.ycc else lattice.to_rgb(image, mapping) if choice.lattice else image

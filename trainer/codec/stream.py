"""What every codec of pixlm shares (CompressAI's habit: one template, entropy coding apart):
the bundle and its model, the `.pxl` container written and checked, the pixel CRC, timing, and
the Report of a coding run. `trainer.codec.patch` (LM bundles) and `trainer.codec.wavefront`
(context bundles) implement the prediction order on top of it.
"""

import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer.codec import fallback
from trainer.codec.bundle import Bundle, open_bundle
from trainer.codec.container import Header, pack, unpack
from trainer.codec.entropy import Decoder, Encoder
from trainer.tokenize.pixels import MODES, load_image, to_image

class CodecError(ValueError):
    """A stream that does not decode with this bundle or this machine."""


@dataclass
class Report:
    """What a coding run measured. bpsp counts every byte of the file, header included."""
    path: str
    width: int
    height: int
    channels: int
    file_bytes: int
    seconds: float
    model_bpsp: float | None = None  # ideal code length of the integer tables coded, bits per subpixel (encode only)
    # The stream holds the fallback payload (lossless WebP), smaller than the model's; model_bpsp and
    # bits still describe the model's tables, so overhead is then negative.
    fallback: bool = False
    timing: dict = field(default_factory=dict)
    # encode(..., bits_map=True): (H, W, C) float32, the code length -log2(freq / 2**precision) of each
    # subpixel under the integer tables actually coded, at its pixel position (header/flush not included)
    bits: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def subpixels(self) -> int:
        return self.width * self.height * self.channels

    @property
    def bpsp(self) -> float:
        return 8 * self.file_bytes / self.subpixels

    @property
    def overhead(self) -> float | None:
        return self.bpsp / self.model_bpsp - 1 if self.model_bpsp else None

    def summary(self, verb: str) -> str:
        line = f"{self.path}: {self.width}x{self.height}x{self.channels}, {self.file_bytes} bytes, {self.bpsp:.4f} bpsp"
        if self.model_bpsp is not None:
            line += f" (ideal code length {self.model_bpsp:.4f} bpsp, overhead {100 * self.overhead:.2f}%)"
        if self.fallback:
            line += ", lossless WebP: smaller than the model's stream"
        line += f", {verb} {self.seconds:.2f} s, {self.subpixels / self.seconds:,.0f} subpixels/s"
        if self.timing:  # where the time went: model, quantize (frequency tables), coder, other (Python, I/O)
            line += " [" + ", ".join(f"{k} {v:.1f} s" for k, v in self.timing.items()) + "]"
        return line


@contextmanager
def torch_threads(count: int | None):
    """Run the block on `count` torch threads (None: leave the caller's setting), then restore it.
    The one place a codec sets threads: encode and decode run inside it."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StreamCodec:
    """What every bundle's codec shares: the bundle and its model, the container, the checks.

    `encode` and `decode` are written once, here; a subclass sets `numeric_mode` and `layout` (the
    patch height and width written into streams) and implements the prediction order:
    `_encode_symbols(image, encoder, bits)` codes every symbol and returns their ideal code length
    in bits under the integer tables it coded with (so the overhead in a Report means what it says),
    and `_decode_symbols(header, decoder)` returns the decoded image.

    With `fallback` (the default) the encoder also writes the image as lossless WebP
    (trainer.codec.fallback) and keeps the smaller stream; `fallback=False` always keeps the model's
    (studies of the model itself). Every decoder reads both."""

    numeric_mode: str
    layout: tuple[int, int]
    threads: int | None = None  # torch threads while coding; None: the caller's
    cores: int | None = None  # cores one coding run keeps busy, where it is not `threads` (the bench's cost)

    def __init__(self, bundle: Bundle | str | Path, progress: bool = True, fallback: bool = True):
        self.bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        self.fallback = fallback
        torch.set_flush_denormal(True)  # part of the numeric mode: both sides must agree
        self.model = self.bundle.load_model()
        self.progress = progress
        self.timing = {}

    def _timed(self, key, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        self.timing[key] = self.timing.get(key, 0.0) + time.perf_counter() - start
        return out

    def _breakdown(self, seconds: float) -> dict:
        out = {k: round(v, 3) for k, v in self.timing.items()}
        out["other"] = round(seconds - sum(self.timing.values()), 3)
        return out

    def encode(self, source, out_path, bits_map: bool = False) -> Report:
        """Encode an image (path or PIL image) into a .pxl file; returns what was measured.
        With bits_map=True the Report also carries each subpixel's code length (Report.bits)."""
        start = time.perf_counter()
        self.timing = {}
        image = load_image(source)
        height, width, channels = image.shape
        self._check_channels(channels)
        encoder = Encoder(self.bundle.precision)
        bits = np.zeros(image.shape, dtype=np.float32) if bits_map else None
        with torch_threads(self.threads):
            ideal_bits = self._encode_symbols(image, encoder, bits)
        payload, numeric_mode = encoder.finish(), self.numeric_mode
        if self.fallback:
            webp = self._timed("fallback", fallback.encode, image)
            if webp is not None and len(webp) < len(payload):
                payload, numeric_mode = webp, fallback.MODE
        size = self._write(image, payload, out_path, numeric_mode)
        seconds = time.perf_counter() - start
        return Report(str(out_path), width, height, channels, size, seconds, model_bpsp=ideal_bits / image.size,
                      fallback=numeric_mode == fallback.MODE, timing=self._breakdown(seconds), bits=bits)

    def decode(self, in_path, out_path=None) -> tuple[np.ndarray, Report]:
        """Decode a .pxl file (checked end to end); writes a PNG if out_path is given."""
        start = time.perf_counter()
        self.timing = {}
        header, payload, size = self._read(in_path)
        if header.numeric_mode == fallback.MODE:
            try:
                image = fallback.decode(payload, header.height, header.width, header.channels)
            except ValueError as err:
                raise CodecError(str(err)) from None
        else:
            with torch_threads(self.threads):
                image = self._decode_symbols(header, Decoder(payload, header.precision))
        self._finish(image, header, out_path)
        seconds = time.perf_counter() - start
        return image, Report(str(in_path), header.width, header.height, header.channels, size, seconds,
                             timing=self._breakdown(seconds))

    def _code_lengths(self, freqs: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """Ideal code length in bits of each symbol under its integer frequency table."""
        return self.bundle.precision - np.log2(freqs[np.arange(len(symbols)), symbols])

    def _check_channels(self, channels: int) -> None:
        """Refuse images of a channel count this codec cannot code (every count, by default, can)."""

    def _write(self, image: np.ndarray, payload: bytes, out_path, numeric_mode: str) -> int:
        """Write the stream of `image`; its size in bytes."""
        height, width, channels = image.shape
        header = Header(bytes.fromhex(self.bundle.bundle_id)[:16], numeric_mode,
                        MODES[channels], width, height, channels,
                        *self.layout, self.bundle.precision, zlib.crc32(image.tobytes()))
        data = pack(header, payload)
        Path(out_path).write_bytes(data)
        return len(data)

    def _read(self, in_path) -> tuple[Header, bytes, int]:
        """(header, payload, file size) of a stream, every check passed before any model runs."""
        data = Path(in_path).read_bytes()
        header, payload = unpack(data)
        self.check_header(header)
        return header, payload, len(data)

    def check_header(self, header: Header) -> None:
        if header.bundle_id != bytes.fromhex(self.bundle.bundle_id)[:16]:
            raise CodecError(f"this file was encoded with bundle {header.bundle_id.hex()}..., not with "
                             f"{self.bundle.path} ({self.bundle.bundle_id[:32]}...)")
        if header.numeric_mode not in (self.numeric_mode, fallback.MODE):
            raise CodecError(f"this file was encoded in numeric mode {header.numeric_mode}; this decoder computes "
                             f"{self.numeric_mode}: decoding would not reproduce its probabilities")
        if (header.patch_height, header.patch_width, header.precision) != (*self.layout, self.bundle.precision):
            raise CodecError("patch layout or precision in the file differs from the bundle's")
        self._check_channels(header.channels)

    def _finish(self, image: np.ndarray, header: Header, out_path) -> None:
        """Check the decoded pixels against the stream's CRC, then write the PNG (never a wrong image)."""
        if zlib.crc32(image.tobytes()) != header.pixel_crc:
            raise CodecError("decoded pixels fail the CRC check: this machine computes different probabilities "
                             f"than the encoder's (numeric mode {header.numeric_mode}); the output was not written")
        if out_path is not None:
            to_image(image).save(out_path, format="PNG")

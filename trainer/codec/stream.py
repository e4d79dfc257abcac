"""What every codec of pixlm shares (CompressAI's habit: one template, entropy coding apart):
the bundle and its model, the `.pxl` container written and checked, the pixel CRC, timing, and
the Report of a coding run. `trainer.codec.patch` (LM bundles) and `trainer.codec.wavefront`
(context bundles) implement the prediction order on top of it.
"""

import io
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.codec import bands, envelope, fallback, jpeg, keep
from trainer.codec import samples as samples_codec
from trainer.codec.bundle import Bundle, open_bundle
from trainer.codec.container import Header, pack, unpack
from trainer.cpu import flush_denormals
from trainer.images import limit
from trainer.images.bands import open_source, open_writer, whole
from trainer.images.files import write_file, written_whole
from trainer.images.picture import (Picture, picture_bytes, picture_of_bytes, plain_picture, read_picture,
                                    sample_bytes)
from trainer.tokenize.pixels import MODES
from trainer.errors import PixlmError


class CodecError(PixlmError):
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
    depth: int = 8  # bits per sample of the image (bpsp counts bits per sample at this depth)
    # model, webp-lossless, jpegxl-lossless, (version 4) planes / split16 / jxl, (version 5) file / jpeg
    representation: str = "model"
    notes: list = field(default_factory=list)  # what the input held that the stream does not carry

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
        depth = f" at {self.depth} bits" if self.depth != 8 else ""
        line = f"{self.path}: {self.width}x{self.height}x{self.channels}{depth}, {self.file_bytes} bytes, {self.bpsp:.4f} bpsp"
        if self.model_bpsp is not None:
            line += f" (ideal code length {self.model_bpsp:.4f} bpsp, overhead {100 * self.overhead:.2f}%)"
        if self.representation in (envelope.NAMES[envelope.FILE], envelope.NAMES[envelope.JPEG]):
            pass  # the note says how the file is kept
        elif self.representation not in ("model", *fallback.MODES):
            line += f", coded as {self.representation}"
        elif self.fallback:
            line += f", {self.representation}: smaller than the model's stream"
        line += f", {verb} {self.seconds:.2f} s, {self.subpixels / self.seconds:,.0f} subpixels/s"
        if self.timing:  # where the time went: model, quantize (frequency tables), coder, other (Python, I/O)
            line += " [" + ", ".join(f"{k} {v:.1f} s" for k, v in self.timing.items()) + "]"
        return "".join([line] + [f"; {note}" for note in self.notes])


@contextmanager
def torch_threads(count: int | None):
    """Run the block on `count` torch threads (None: leave the caller's setting), then restore it.
    The one place a codec sets threads: encode and decode run inside it (network codecs only: the
    online codec imports no torch and gives its threads to the engine)."""
    if count is None:
        yield
        return
    import torch

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
    and `_decode_symbols(header, decoder)` returns the decoded image. A codec with its own compiled
    coder (trainer.codec.online) overrides `_code` and `_decode_payload` instead.

    With `fallback` (the default) the encoder also writes the image as lossless WebP
    (trainer.codec.fallback) and keeps the smaller stream; `fallback=False` always keeps the model's
    (studies of the model itself). Every decoder reads both."""

    numeric_mode: str
    layout: tuple[int, int]
    threads: int | None = None  # torch threads while coding; None: the caller's
    cores: int | None = None  # cores one coding run keeps busy, where it is not `threads` (the bench's cost)
    portable: bool = False  # the numeric mode computes the same probabilities on every machine
    strongest_fallbacks: bool = False  # also the strongest classical modes, where a fallback came near the model
    max_pixels: int | None = limit.MAX_PIXELS  # larger declared sizes are refused before decoding (0/None: no limit)

    def __init__(self, bundle: Bundle | str | Path, progress: bool = True, fallback: bool = True):
        self.bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        self.fallback = fallback
        flush_denormals()  # part of the numeric mode: both sides must agree (torch's setting, without torch)
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

    def encode(self, source, out_path, bits_map: bool = False, strip: bool = False) -> Report:
        """Encode an image (a path, a PIL image or an (H, W, C) uint8/uint16 array) into a .pxl file;
        returns what was measured. With bits_map=True the Report also carries each subpixel's code
        length (Report.bits; plain 8-bit images). `strip` drops metadata (ICC, EXIF, XMP, text).
        A file of more than bands.BAND_PIXELS pixels is read, coded and written a band at a time."""
        if not bits_map and isinstance(source, (str, Path)) and Path(source).is_file() and self._large_file(source):
            report = self._encode_file_bands(Path(source), Path(out_path), strip)
        else:
            data, report = self.encode_bytes(source, bits_map, strip)
            write_file(out_path, data)
        report.path = str(out_path)
        return report

    def _large_file(self, path) -> bool:
        """A file to code in bands: its declared size (checked against the limit) over a band's."""
        with open(path, "rb") as f:
            head = f.read(4096)
        size = None if jpeg.is_jpeg(head) else limit.declared_size(head)
        limit.check(size, str(path), self.max_pixels)
        return size is not None and bands.banded(*size)

    def _encode_file_bands(self, path: Path, out_path: Path, strip: bool) -> Report:
        """`encode` of a large file: bands read from it and written to `out_path` (whole or not at
        all); the file's own bytes where the stream came out larger than the file."""
        start = time.perf_counter()
        self.timing = {}
        with written_whole(out_path) as temporary:
            with open_source(path, self.max_pixels) as source, open(temporary, "wb") as f:
                if strip:
                    source.head = source.head.stripped()
                size, ideal = bands.encode(self, source, f, self._band_threads)
            head, representation, notes = source.head, envelope.NAMES[envelope.BANDS], list(source.head.notes)
            if self.fallback and not strip and size > path.stat().st_size:
                original = path.read_bytes()
                kept = self._timed("keep", keep.pack, self.short_id, original, picture_of_bytes(
                    original, str(path), self.max_pixels), path.suffix)
                if len(kept) < size:
                    temporary.write_bytes(kept)
                    size, ideal, representation = len(kept), None, envelope.NAMES[envelope.FILE]
                    notes = [f"kept the file's own bytes{keep.CODERS_SAID[envelope.unpack(kept).low]}: "
                             f"the coded stream was larger"]
        seconds = time.perf_counter() - start
        subpixels = head.width * source.height * head.channels
        return Report("", head.width, source.height, head.channels, size, seconds,  # no breakdown: bands overlap
                      model_bpsp=ideal / subpixels if ideal is not None else None,
                      fallback=representation == envelope.NAMES[envelope.FILE],
                      depth=head.depth, representation=representation, notes=notes)

    @property
    def _band_threads(self) -> int:
        """Bands coded at once: the cores a coding run keeps busy (one for network codecs)."""
        return self.cores or 1

    def encode_bytes(self, source, bits_map: bool = False, strip: bool = False) -> tuple[bytes, Report]:
        """`encode` into memory: (the .pxl bytes, what was measured)."""
        start = time.perf_counter()
        self.timing = {}
        original = None  # the input file's own bytes, where the source is a file
        if isinstance(source, (str, Path)) and Path(source).is_file():
            original = Path(source).read_bytes()
            if self.fallback and not strip and jpeg.is_jpeg(original):  # the same JPEG file back, smaller
                return self._encode_jpeg(original, str(source), start)
            picture = picture_of_bytes(original, str(source), self.max_pixels)
        else:
            picture = read_picture(source)
        if strip:
            picture = picture.stripped()
        if bands.banded(picture.width, picture.height) and not bits_map:  # a large picture: in bands
            buffer = io.BytesIO()
            ideal_bits = bands.encode(self, whole(picture), buffer, self._band_threads)[1]
            data, representation, fell_back, bits = buffer.getvalue(), envelope.NAMES[envelope.BANDS], False, None
        elif picture.plain:  # an 8-bit image and nothing else: a version 2/3 stream
            data, ideal_bits, fell_back, bits = self._stream(picture.samples, bits_map)
            representation = unpack(data)[0].numeric_mode if fell_back else "model"
        else:
            data, ideal_bits, representation = self._envelope(picture)
            fell_back = representation == envelope.NAMES[envelope.JXL] or any(m in representation for m in fallback.MODES)
            bits = None
        notes = list(picture.notes)
        if original is not None and self.fallback and not strip and len(data) > len(original):
            kept = self._timed("keep", keep.pack, self.short_id, original, picture, Path(source).suffix)
            if len(kept) < len(data):
                coder = keep.CODERS_SAID[envelope.unpack(kept).low]
                notes = [f"kept the file's own bytes{coder}: the coded stream was larger ({len(data):,} bytes)"]
                data, representation, fell_back = kept, envelope.NAMES[envelope.FILE], True
                ideal_bits, bits = None, None  # no model's code in the stream
        if original is not None and len(data) > len(original):
            notes.append(f"{len(data) - len(original):,} bytes larger than the input file ({len(original):,} bytes)")
        seconds = time.perf_counter() - start
        return data, Report("", picture.width, picture.height, picture.channels, len(data), seconds,
                            model_bpsp=ideal_bits / picture.samples.size if ideal_bits is not None else None,
                            fallback=fell_back, timing=self._breakdown(seconds), bits=bits, depth=picture.depth,
                            representation=representation, notes=notes)

    def _encode_jpeg(self, original: bytes, name: str, start: float) -> tuple[bytes, Report]:
        """A JPEG file's stream (version 5): its coefficients recoded by the smallest coder that gives
        back every byte (trainer.codec.jpeg), else the file's own bytes (trainer.codec.keep); no
        model runs (its pixels would not give the file back). A file libjpeg cannot decode is refused."""
        shape = self._timed("jpeg", jpeg.examine, original, name)
        good, failed = self._timed("jpeg", jpeg.recoded, original)
        suffix = Path(name).suffix
        kept = self._timed("keep", keep.pack, self.short_id, original, shape, suffix, not good)
        recoded = jpeg.pack(self.short_id, original, shape, *good[0], suffix) if good else None
        if recoded is not None and len(recoded) <= len(kept):
            data, representation = recoded, envelope.NAMES[envelope.JPEG]
            notes = [f"JPEG recoded by {jpeg.SAID[good[0][0]]}, restored byte for byte: "
                     f"{100 * (1 - len(data) / len(original)):.1f} % below the file ({len(original):,} bytes)"]
        else:
            data, representation = kept, envelope.NAMES[envelope.FILE]
            coder = keep.CODERS_SAID[envelope.unpack(kept).low]
            why = (f"smaller than the JPEG recoded ({len(recoded):,} bytes)" if recoded is not None else
                   "no JPEG coder restores it (" + "; ".join(f"{k}: {v}" for k, v in failed.items()) + ")")
            notes = [f"kept the file's own bytes{coder}: {why}"]
        if len(data) > len(original):
            notes.append(f"{len(data) - len(original):,} bytes larger than the input file ({len(original):,} bytes)")
        seconds = time.perf_counter() - start
        return data, Report("", shape.width, shape.height, shape.channels, len(data), seconds,
                            fallback=representation == envelope.NAMES[envelope.FILE],
                            timing=self._breakdown(seconds), depth=shape.depth, representation=representation,
                            notes=notes)

    def _stream(self, image: np.ndarray, bits_map: bool = False, model: bool = True):
        """(version 2/3 stream, ideal code length in bits or None, fallback used, bits map) of an 8-bit
        (H, W, C) image: the model's stream, or lossless WebP where that is smaller (or `model` is False)."""
        height, width, channels = image.shape
        self._check_channels(channels)
        payload, numeric_mode, ideal_bits, bits = None, fallback.MODE, None, None
        if model:
            bits = np.zeros(image.shape, dtype=np.float32) if bits_map else None
            payload, ideal_bits = self._code(image, bits)
            numeric_mode = self.numeric_mode
        if (self.fallback or not model) and max(height, width) <= fallback.MAX_SIDE:
            model_bytes, nearest = len(payload) if payload is not None else None, None
            for mode, encode in self._fallbacks(model):
                other = self._timed("fallback", encode, image)
                if other is not None:
                    nearest = len(other) if nearest is None else min(nearest, len(other))
                    if payload is None or len(other) < len(payload):
                        payload, numeric_mode = other, mode
            # the strongest (slow) classical modes only where a classical codec came near the model
            if self.strongest_fallbacks and nearest is not None and (
                    model_bytes is None or nearest <= fallback.NEAR * model_bytes):
                for mode, encode in fallback.strongest():
                    other = self._timed("fallback", encode, image)
                    if other is not None and len(other) < len(payload):
                        payload, numeric_mode = other, mode
        if payload is None:
            raise CodecError(f"{width}x{height}: lossless WebP cannot hold this image and no model was to code it")
        header = Header(self.short_id, numeric_mode, MODES[channels], width, height, channels,
                        *self.layout, self.bundle.precision, zlib.crc32(image.tobytes()))
        return pack(header, payload), ideal_bits, numeric_mode in fallback.MODES, bits

    def _fallbacks(self, model: bool = True) -> list:
        """(numeric mode, encoder) of the classical codecs tried beside the model: lossless WebP
        (a codec with other fallbacks overrides this; without a model, WebP is always tried)."""
        return [(fallback.MODE, fallback.encode)]

    def _envelope(self, picture: Picture) -> tuple[bytes, float | None, str]:
        """(version 4 stream, ideal bits of the model's part or None, representation) of a picture that
        is not a plain 8-bit image. The encoder tries the representations that can win and keeps the
        smallest; the decoder reads which from the header."""
        samples = picture.samples
        jxl = self._timed("jpegxl", samples_codec.jxl_encode, samples)
        candidates = [(len(jxl), envelope.JXL, envelope.LOW_PART, [jxl], None, False)]
        # Palette indices and 1/2/4-bit values are not what a photo model predicts: JPEG-XL or WebP.
        use_model = picture.layout != "P" and picture.depth in (8, 16)
        if picture.depth <= 8:
            inner, ideal, webp, _ = self._stream(samples, model=use_model)
            candidates.append((len(inner), envelope.PLANES, envelope.LOW_PART, [inner], ideal, webp))
        else:
            high, low_mode, low_part = samples_codec.split16(samples)
            # The model's high bytes beat JPEG-XL's by far less than a quarter: skip a split that cannot win.
            if low_part is None or len(low_part) < len(jxl):
                inner, ideal, webp, _ = self._stream(high)
                parts = [inner] + ([low_part] if low_part is not None else [])
                candidates.append((sum(map(len, parts)), envelope.SPLIT16, low_mode, parts, ideal, webp))
        if not self.fallback and any(c[4] is not None for c in candidates):  # a study of the model: its stream
            candidates = [c for c in candidates if c[4] is not None]
        _, representation, low_mode, parts, ideal, webp = min(candidates, key=lambda c: c[0])
        stream = envelope.pack(envelope.Envelope(
            self.short_id, representation, low_mode, picture.width, picture.height, picture.channels,
            picture.depth, zlib.crc32(sample_bytes(samples)), picture.entries(), parts))
        name = envelope.NAMES[representation] + ("+" + unpack(parts[0])[0].numeric_mode if webp else "")
        return stream, ideal, name

    def decode(self, in_path, out_path=None, samples: bool = True) -> tuple[np.ndarray | None, Report]:
        """Decode a .pxl file (checked end to end); writes the image file if out_path is given: PNG
        for version 2/3 streams, the original's format (PNG, TIFF, PNM) with its metadata for version 4,
        the input file itself for version 5 (a JPEG: the very same .jpg). Returns its samples (None
        for a version 5 file whose pixels pixlm does not read, as a CMYK JPEG's, or with samples=False:
        the file is written back without decoding its pixels) and the Report. A stream of bands
        (version 6) is read, decoded and written a band at a time."""
        start = time.perf_counter()
        with open(in_path, "rb") as f:
            if envelope.is_bands(f.read(5)):
                return self._decode_file_bands(Path(in_path), out_path, samples, start)
        data = Path(in_path).read_bytes()
        self.timing = {}
        original = self._timed("restore", self._kept_file, data) if keep.is_kept(data) else None
        if original is None:
            picture = self.decode_picture(data)
            pixels, depth, representation, notes = picture.samples, picture.depth, "model", []
            height, width, channels = pixels.shape
            if out_path is not None:
                write_file(out_path, picture_bytes(picture))
        else:  # the input file itself (version 5): its bytes back; its pixels where pixlm reads them
            env = envelope.unpack(data)
            facts = keep.facts(env)
            if out_path is not None:
                write_file(out_path, original)
            pixels = self._kept_samples(original) if samples else None
            height, width, channels, depth = env.height, env.width, env.channels, env.depth
            representation = facts["representation"]
            notes = [f"restored the JPEG file byte for byte ({jpeg.SAID.get(env.low, facts['coder'])}; "
                     f"{len(original):,} bytes)" if env.representation == envelope.JPEG else
                     f"wrote back the file's own bytes (a {facts['format'].upper()} file of {len(original):,} bytes)"]
        seconds = time.perf_counter() - start
        return pixels, Report(str(in_path), width, height, channels, len(data), seconds,
                               timing=self._breakdown(seconds), depth=depth, representation=representation,
                               notes=notes)

    def _decode_file_bands(self, in_path: Path, out_path, samples: bool, start: float):
        """`decode` of a stream of bands: each band's rows written out as they come (whole or not at all)."""
        self.timing = {}
        rows = [] if samples or out_path is None else None
        with open(in_path, "rb") as f:
            env, _ = envelope.read_head(f)
            f.seek(0)
            head = self._picture(np.zeros((0, env.width, env.channels), np.uint16 if env.depth > 8 else np.uint8),
                                 env.entries)
            if out_path is None:
                bands.decode(self, f, rows.append, self._band_threads)
            else:
                with open_writer(out_path, head, env.height) as write:
                    bands.decode(self, f, write if rows is None else lambda band: write(band) or rows.append(band),
                                 self._band_threads)
        seconds = time.perf_counter() - start
        return (np.concatenate(rows) if rows else None), Report(
            str(in_path), env.width, env.height, env.channels, in_path.stat().st_size, seconds,
            depth=env.depth, representation=envelope.NAMES[envelope.BANDS])

    def decode_picture(self, data: bytes) -> Picture:
        """The picture of .pxl bytes: samples at full depth with the original's format and metadata."""
        self.timing = {}
        original = self._kept_file(data)
        if original is not None:
            return self._kept_picture(original)
        if envelope.is_bands(data):
            rows = []
            env = bands.decode(self, io.BytesIO(data), rows.append, self._band_threads)
            return self._picture(np.concatenate(rows), env.entries)
        if envelope.is_envelope(data):
            return self._open_envelope(data)
        return plain_picture(self._decode_stream(data))

    @staticmethod
    def _kept_file(data: bytes) -> bytes | None:
        """The input file's own bytes where `data` is a version 5 stream (checked), else None. No bundle
        is needed: the stream's bundle id only says which encoder wrote it."""
        if not keep.is_kept(data):
            return None
        return keep.file_bytes(envelope.unpack(data))

    @staticmethod
    def _kept_samples(original: bytes) -> np.ndarray | None:
        """The samples of a kept file's bytes, None where pixlm does not read them (a CMYK JPEG)."""
        try:
            return picture_of_bytes(original, "the kept file").samples
        except PixlmError:
            return None

    @staticmethod
    def _kept_picture(original: bytes) -> Picture:
        """The picture of a kept file's bytes (its samples: what `decode` returns)."""
        try:
            return picture_of_bytes(original, "the kept file")
        except PixlmError as err:
            raise CodecError(f"the kept file does not read as an image here ({err})") from None

    def _decode_stream(self, data: bytes) -> np.ndarray:
        """The pixels of a version 1-3 stream, every check passed (the pixel CRC last)."""
        header, payload = unpack(data)
        self.check_header(header)
        if header.numeric_mode in fallback.MODES:
            try:
                image = fallback.decode_any(header.numeric_mode, payload, header.height, header.width,
                                            header.channels)
            except ValueError as err:
                raise CodecError(f"damaged payload: {err}") from None
        else:
            image = self._decode_payload(header, payload)
        if zlib.crc32(image.tobytes()) != header.pixel_crc:
            raise CodecError(self._crc_failure(header.numeric_mode))
        return image

    def _open_envelope(self, data: bytes) -> Picture:
        """The picture of a version 4 stream: parts decoded, samples put together and CRC-checked."""
        env = envelope.unpack(data)
        if env.bundle_id != self.short_id and env.representation != envelope.JXL:
            raise CodecError(self._foreign(env.bundle_id))
        shape = (env.height, env.width, env.channels)
        dtype = np.uint16 if env.depth > 8 else np.uint8
        try:
            if env.representation == envelope.JXL:
                samples = samples_codec.jxl_decode(env.parts[0], shape, dtype)
            else:
                inner = self._decode_stream(env.parts[0])
                if env.representation == envelope.SPLIT16:
                    samples = samples_codec.join16(inner, env.low, env.parts[1] if len(env.parts) > 1 else None)
                else:
                    samples = inner
        except ValueError as err:
            if isinstance(err, CodecError):
                raise
            raise CodecError(f"damaged payload: {err}") from None
        if samples.shape != shape:
            raise CodecError(f"damaged payload: it holds {samples.shape}, the header says {shape}")
        if zlib.crc32(sample_bytes(samples)) != env.sample_crc:
            raise CodecError("damaged payload: the decoded samples fail the CRC check; the output was not written")
        if env.depth < 8 and samples.max(initial=0) >= 1 << env.depth:
            raise CodecError(f"damaged payload: samples beyond {env.depth} bits")
        return self._picture(samples, env.entries)

    @staticmethod
    def _picture(samples: np.ndarray, entries: list) -> Picture:
        try:
            return Picture.from_entries(samples, entries)
        except (ValueError, KeyError, TypeError) as err:
            raise CodecError(f"damaged format entry ({err})") from None

    def _code(self, image: np.ndarray, bits: np.ndarray | None) -> tuple[bytes, float]:
        """(payload, ideal code length in bits) of the model's stream of an 8-bit image: the model's
        tables through constriction's range coder (a codec with its own coder overrides this)."""
        from trainer.codec.entropy import Encoder  # constriction and torch: network codecs only

        encoder = Encoder(self.bundle.precision)
        with torch_threads(self.threads):
            ideal_bits = self._encode_symbols(image, encoder, bits)
        return encoder.finish(), ideal_bits

    def _decode_payload(self, header: Header, payload: bytes) -> np.ndarray:
        from trainer.codec.entropy import Decoder

        with torch_threads(self.threads):
            return self._decode_symbols(header, Decoder(payload, header.precision))

    @property
    def short_id(self) -> bytes:
        return bytes.fromhex(self.bundle.bundle_id)[:16]

    def _foreign(self, bundle_id: bytes) -> str:
        return (f"this file was encoded with bundle {bundle_id.hex()}..., not with "
                f"{self.bundle.path} ({self.bundle.bundle_id[:32]}...)")

    def _crc_failure(self, numeric_mode: str) -> str:
        """What a pixel CRC mismatch means: a numeric mode every machine reproduces cannot be the cause."""
        if numeric_mode in fallback.MODES or self.portable:
            return ("damaged payload: the decoded pixels fail the CRC check (numeric mode "
                    f"{numeric_mode} computes the same on every machine); the output was not written")
        return ("decoded pixels fail the CRC check: the payload is damaged, or this machine computes other "
                f"probabilities than the encoder's (numeric mode {numeric_mode}); the output was not written")

    def _code_lengths(self, freqs: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """Ideal code length in bits of each symbol under its integer frequency table."""
        return self.bundle.precision - np.log2(freqs[np.arange(len(symbols)), symbols])

    def _check_channels(self, channels: int) -> None:
        """Refuse images of a channel count this codec cannot code (every count, by default, can)."""

    def check_header(self, header: Header) -> None:
        if header.bundle_id != self.short_id:
            raise CodecError(self._foreign(header.bundle_id))
        if header.numeric_mode not in (self.numeric_mode, *fallback.MODES):
            raise CodecError(f"this file was encoded in numeric mode {header.numeric_mode}; this decoder computes "
                             f"{self.numeric_mode}: decoding would not reproduce its probabilities")
        if (header.patch_height, header.patch_width, header.precision) != (*self.layout, self.bundle.precision):
            raise CodecError("patch layout or precision in the file differs from the bundle's")
        self._check_channels(header.channels)

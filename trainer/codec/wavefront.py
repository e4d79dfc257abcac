"""The wavefront codec of context-student bundles (trainer.models.context): same container,
same integer tables and range coder as the LM codec, another prediction order.

Order of coding: wavefronts t = lag*y + x in increasing t (context_model.wavefronts); inside a
wavefront, channel by channel, pixels top to bottom. Each wavefront is one batch: its pixels'
contexts all lie in earlier wavefronts.

Why encoder and decoder agree bit for bit: both run `_wavefronts` below, the one loop, over the
same canvas contents (the encoder writes the true values into its canvas as it goes, the
decoder the decoded ones), so every model call has the same rows in the same order and shape.
The thread count is part of the numeric mode: CPU matmul kernels split small products
differently across threads and change the floats (measured: row counts 5, 6, 9, ... of the
trunk differ between 1 and 2 threads). So both sides compute on exactly one thread, whatever
torch's setting; parallelism comes from coding several images at once (separate processes).
Other CPU kinds or builds may compute other floats: the pixel CRC turns that into an error,
never a wrong image.

Models whose tables do not depend on the batch (`batch_invariant`: the integer backend,
trainer.models.integer_context) compute the same tables for any batch, thread count, CPU kind or
device. So their encoder, which knows every pixel, predicts a whole adaptation block (or, without
adaptation, the whole image) in one batched call on all cores, and only the decoder goes
wavefront by wavefront; the stream records the model's numeric mode (`ctx-int-v1`), which any
machine reproduces.

Bundles with an `adaptation` in codec.json keep training the model on the image as it is coded
(trainer.codec.adapt): after every block of coded pixels, Adam steps on them, repeated by the decoder.
Their numeric mode names the adaptation, so a stream records how its weights moved.
"""

import numpy as np
import torch
from tqdm.auto import tqdm

from trainer.codec.adapt import OnlineAdapter, blocks
from trainer.codec.stream import CodecError, StreamCodec
from trainer.models.context import wavefronts
from trainer.tokenize.pixels import MODES

WHOLE_IMAGE = 8192  # pixels per batched call of a static integer encoder (memory, not results)


class WavefrontCodec(StreamCodec):
    """Codes an image wavefront by wavefront with a context model (float or integer backend)."""

    layout = (1, 1)  # no patches
    threads = 1  # float backends: part of the numeric mode, whatever the caller's setting

    def __init__(self, bundle, batch_size: int | None = None, threads: int | None = None, progress: bool = True,
                 fallback: bool = True):
        """`batch_size` is accepted and ignored (a wavefront is the batch). `threads`: batch-invariant
        models compute exact sums, so they code on that many torch threads (None: the caller's
        setting) with the same bytes; float models always compute on one thread (their numeric mode)."""
        super().__init__(bundle, progress, fallback)
        adaptation = self.bundle.adaptation
        self.numeric_mode = self.model.numeric_mode + (f"-{adaptation.tag}" if adaptation else "")
        if self.model.batch_invariant:
            self.threads = threads  # exact sums: the thread count changes nothing but speed
            self.portable = True  # the same tables on every machine: a CRC failure means a damaged payload
        # cores busy while coding one image: the coder, and the adaptation's worker thread (delay 1)
        self.cores = 1 + bool(adaptation and adaptation.delay)

    @torch.no_grad()
    def _wavefronts(self, height: int, width: int, source, desc: str) -> np.ndarray:
        """Run the model over every wavefront; `source(c, ys, xs, freqs)` gives the values
        of channel c at those pixels (encoder: the true ones, decoder: decoded). Returns the image."""
        image = np.zeros((height, width, self.model.config.channels), dtype=np.uint8)
        canvas = self.model.pad(torch.from_numpy(image))
        self._run(list(wavefronts(height, width, self.model.config.lag)), canvas, image, source, desc)
        return image

    def _run(self, fronts, canvas, image, source, desc: str) -> None:
        adapter = OnlineAdapter(self.model, self.bundle.adaptation) if self.bundle.adaptation else None
        try:
            self._fronts(fronts, canvas, image, source, desc, adapter)
        finally:
            if adapter:
                adapter.close()

    def _fronts(self, fronts, canvas, image, source, desc: str, adapter) -> None:
        cfg = self.model.config
        top, left = cfg.rows_above, cfg.cols_side + cfg.cols_left
        model = adapter.model if adapter else self.model
        for ys, xs in tqdm(fronts, desc=desc, unit="front", disable=not self.progress, mininterval=0.5):
            ys_t, xs_t = torch.from_numpy(ys), torch.from_numpy(xs)
            context = self._timed("model", model.context, canvas, ys_t, xs_t)
            features = self._timed("model", model.features, context)
            previous = canvas.new_zeros(len(ys), 0)
            for c in range(cfg.channels):
                freqs = self._timed("model", model.frequencies, features, c, previous, self.bundle.precision)
                values = source(c, ys, xs, freqs)
                image[ys, xs, c] = values
                coded = model.units(torch.from_numpy(values))
                canvas[ys_t + top, xs_t + left, c] = coded
                previous = torch.cat([previous, coded[:, None]], 1)
            if adapter:
                self._timed("adapt", adapter.coded, ys, xs, canvas, image)

    def _encode_batched(self, values_of: np.ndarray, encoder) -> tuple[float, np.ndarray]:
        """Batch-invariant models: predict each adaptation block (static: slices of the image) in one call,
        then code its symbols in the decoder's order (wavefront, channel, pixel). Returns the ideal
        code length and the (H, W, C) code lengths."""
        height, width, channels = values_of.shape
        adaptation = self.bundle.adaptation
        lengths_map = np.zeros(values_of.shape, dtype=np.float32)
        canvas = self.model.pad(torch.from_numpy(values_of))
        adapter = OnlineAdapter(self.model, adaptation) if adaptation else None
        model = adapter.model if adapter else self.model
        size = adaptation.block if adaptation else WHOLE_IMAGE
        ideal = 0.0
        try:
            for fronts, full in tqdm(list(blocks(height, width, self.model.config.lag, size)), desc="encode",
                                     unit="block", disable=not self.progress, mininterval=0.5):
                ys = np.concatenate([f[0] for f in fronts])
                xs = np.concatenate([f[1] for f in fronts])
                context = self._timed("model", model.context, canvas, torch.from_numpy(ys), torch.from_numpy(xs))
                targets = torch.from_numpy(values_of[ys, xs])
                features = self._timed("model", model.features, context)
                previous = model.units(targets)
                freqs = np.stack([self._timed("model", model.frequencies, features, c, previous[:, :c],
                                              self.bundle.precision) for c in range(channels)])
                # the decoder's order: front by front, inside a front channel by channel
                bounds = np.cumsum([0] + [len(f[0]) for f in fronts])
                order = np.concatenate([c * len(ys) + np.arange(a, b) for a, b in zip(bounds, bounds[1:])
                                        for c in range(channels)])
                symbols = values_of[ys, xs].T.reshape(-1)[order]
                tables = freqs.reshape(-1, 256)[order]
                self._timed("coder", encoder.encode, symbols, tables)
                lengths = self._code_lengths(tables, symbols)
                ideal += float(lengths.sum())
                lengths_map[ys[order % len(ys)], xs[order % len(ys)], order // len(ys)] = lengths
                if adapter and full:
                    self._timed("adapt", adapter.block_done, context, targets)
        finally:
            if adapter:
                adapter.close()
        return ideal, lengths_map

    def _planes(self, channels: int) -> list[tuple[int, ...]]:
        """Which image channels each coded plane carries. An RGB model codes every mode: L as one
        plane of three equal channels, LA as two such planes (L, then A), RGBA as RGB then A. A
        repeated channel costs almost nothing once the adaptation has seen that the copies agree
        (the previous-channel skip predicts them exactly), and each plane adapts on its own."""
        own = self.model.config.channels
        if channels == own:
            return [tuple(range(own))]
        if own == 3:
            return {1: [(0, 0, 0)], 2: [(0, 0, 0), (1, 1, 1)], 4: [(0, 1, 2), (3, 3, 3)]}[channels]
        raise CodecError(f"this bundle codes {MODES[own]} images, not {MODES[channels]}; convert the image "
                         f"or use a bundle made for {MODES[channels]}")

    def _check_channels(self, channels: int) -> None:
        self._planes(channels)

    def _encode_symbols(self, truth: np.ndarray, encoder, bits) -> float:
        height, width, channels = truth.shape
        ideal = 0.0
        for plane in self._planes(channels):
            values_of = truth[..., list(plane)]
            if self.model.batch_invariant:
                length, lengths_map = self._encode_batched(np.ascontiguousarray(values_of), encoder)
                ideal += length
                if bits is not None:
                    for c, channel in enumerate(plane):
                        bits[..., channel] += lengths_map[..., c]
                continue

            def source_fn(c, ys, xs, freqs):
                nonlocal ideal
                values = values_of[ys, xs, c]
                self._timed("coder", encoder.encode, values, freqs)
                lengths = self._code_lengths(freqs, values)
                ideal += float(lengths.sum())
                if bits is not None:
                    bits[ys, xs, plane[c]] += lengths
                return values

            self._wavefronts(height, width, source_fn, "encode")
        return ideal

    def _decode_symbols(self, header, decoder) -> np.ndarray:
        image = np.zeros((header.height, header.width, header.channels), dtype=np.uint8)
        for plane in self._planes(header.channels):
            decoded = self._wavefronts(header.height, header.width,
                                       lambda c, ys, xs, freqs: self._timed("coder", decoder.decode, freqs),
                                       "decode")
            image[..., list(plane)] = decoded  # a repeated channel: its copies, equal unless the stream is corrupt
        return image

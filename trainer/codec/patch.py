"""Lossless image coding with a PixelLM bundle: real arithmetic coding into `.pxl` files.

Order of coding. Patches tile the image (pixels.patch_grid); a patch row is decoded as one batch,
step by step through the KV cache, because the context of a patch (the rows above it) lies in
earlier patch rows. Inside a row the stream holds, for step k = 0, 1, ..., the k-th subpixel of
every patch that has one, left to right.

Why encoder and decoder agree bit for bit. Both run the same function (`_predict`) over the same
prefixes and the same step inputs, in float32 with denormals flushed, and quantize the log-probs
to integer frequencies (entropy.quantize). Attention is the eager softmax(QK^T)V: torch's SDPA
splits a one-token query over the cache by thread count, which changes its floats (measured).
What could still differ is the batch: CPU matmul kernels pick other code paths for small
batches (below ~8 rows here), and KV-cache logits then change by ~1 ulp. So
every model call runs at least MIN_LANES rows (padded with copies): at that size each row's
result is the same whatever the batch size, order or company (measured; tests/test_codec.py
keeps checking it). Thread count does not change results either (also tested). The encoder may
therefore batch several patch rows at once, and a decoder may use any batch size.

On a GPU (`device="cuda"`) no batch invariance is assumed: cuBLAS picks kernels by shape. Both
sides then make the very same calls: one patch row per call (all its patches, whatever
batch_size), TF32 off, deterministic algorithms, float32, eager attention. The numeric mode names
the GPU model, so a stream decodes on a GPU of the same model (and this torch/CUDA build).

What is not guaranteed: other CPU kinds, other torch builds or another GPU may compute different
floats. The stream records the bundle id and the numeric mode; a decoder refuses a different
mode, and the CRC32 of the pixels turns any remaining mismatch into an error, never a wrong image.
"""

import os
import re
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from trainer.codec.bundle import Bundle
from trainer.codec.entropy import quantize
from trainer.codec.stream import StreamCodec
from trainer.tokenize.pixels import Patch, patch_grid, patch_values, put_patch

MIN_LANES = 16


class PatchCodec(StreamCodec):
    """The codec of LM bundles (PixelLM): patch rows decoded in order, patches of a row as one batch."""

    def __init__(self, bundle: Bundle | str | Path, batch_size: int = 256, threads: int | None = None,
                 progress: bool = True, fallback: bool = True, device: str = "cpu"):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            deterministic_cuda()
        super().__init__(bundle, progress, fallback)
        self.threads = threads  # results do not depend on it (tested)
        self.prompt = self.model.prompt
        self.batch_size = max(1, batch_size)
        self.numeric_mode = f"fp32-cpu-ftz-eager-l{MIN_LANES}"
        if self.device.type == "cuda":
            self.model.to(self.device)
            gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(self.device))[:40]
            self.numeric_mode = f"fp32-cuda-{gpu}-det-row"
        self.layout = (self.prompt.spec.patch_height, self.prompt.spec.patch_width)

    # -- the one prediction path both sides run --------------------------------------------

    def _chunks(self, rows: np.ndarray):
        """Rows in chunks of batch_size, each padded with copies of its first row to MIN_LANES
        (on a GPU: all rows in one call, the call the decoder makes for a patch row)."""
        size = len(rows) if self.device.type == "cuda" else self.batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            pad = np.repeat(chunk[:1], max(0, MIN_LANES - len(chunk)), 0)
            ids = torch.from_numpy(np.ascontiguousarray(np.concatenate([chunk, pad])))
            yield ids.to(self.device), len(chunk)

    def _prefill(self, prefixes: np.ndarray, steps: int):
        outs, caches = [], []
        for ids, n in self._chunks(prefixes):
            log_probs, cache = self.model.prefill(ids, steps)
            outs.append(log_probs[:n].cpu())
            caches.append(cache)
        return torch.cat(outs), caches

    def _step(self, values: np.ndarray, caches: list):
        outs = []
        for (ids, n), cache in zip(self._chunks(values), caches):
            log_probs, _ = self.model.step(ids, cache)  # the cache grows in place
            outs.append(log_probs[:n].cpu())
        return torch.cat(outs)

    def _predict(self, image: np.ndarray, patches: list[Patch], source) -> np.ndarray:
        """Step through `patches` as one batch. At step k, `source(k, active, freqs, log_probs)` returns
        the values of the active patches (the encoder: the true ones; the decoder: decoded ones)."""
        lengths = np.array([p.height * p.width * image.shape[2] for p in patches])
        steps = int(lengths.max())
        prefixes = np.stack([self.prompt.prefix(self.prompt.context(image, p)) for p in patches])
        values = np.zeros((len(patches), steps), dtype=np.uint8)
        log_probs, caches = self._timed("model", self._prefill, prefixes, steps)
        for k in range(steps):
            active = np.flatnonzero(lengths > k)
            act_log_probs = log_probs[active]
            freqs = self._timed("quantize", quantize, act_log_probs, self.bundle.precision)
            values[active, k] = source(k, active, freqs, act_log_probs)
            if k + 1 < steps:
                log_probs = self._timed("model", self._step, values[:, k], caches)
        return values

    # -- encode and decode: StreamCodec's template calls these ------------------------------------
    def _encode_symbols(self, image: np.ndarray, encoder, bits) -> float:
        height, width, channels = image.shape
        spec = self.prompt.spec
        rows = patch_rows(height, width, spec.patch_height, spec.patch_width)
        ideal = 0.0
        # Patch rows per batch (the encoder has all context); on a GPU one, the decoder's call.
        per_group = 1 if self.device.type == "cuda" else max(1, self.batch_size // len(rows[0]))
        bar = tqdm(total=len(rows), desc="encode", unit="row", disable=not self.progress)
        for g in range(0, len(rows), per_group):
            group_rows = rows[g:g + per_group]
            group = [p for row in group_rows for p in row]
            truth = [patch_values(image, p) for p in group]
            recorded = []  # per step: (active patch indices, frequency tables, true symbols)

            def source(k, active, freqs, log_probs):
                symbols = np.array([truth[i][k] for i in active], dtype=np.uint8)
                recorded.append((active, freqs.astype(np.int32), symbols))
                return symbols

            self._predict(image, group, source)
            lengths = [self._code_lengths(f, s) for _, f, s in recorded]
            ideal += float(sum(length.sum() for length in lengths))
            if bits is not None:
                table = np.zeros((len(group), len(recorded)), dtype=np.float32)
                for k, ((a, _, _), length) in enumerate(zip(recorded, lengths)):
                    table[a, k] = length
                for i, p in enumerate(group):
                    put_patch(bits, p, table[i, :p.height * p.width * channels])
            # Emit in the decoder's order: patch row by patch row, step by step, patches left to right.
            first = 0
            for row in group_rows:
                keep = [(a >= first) & (a < first + len(row)) for a, _, _ in recorded]
                symbols = np.concatenate([s[m] for (_, _, s), m in zip(recorded, keep)])
                freqs = np.concatenate([f[m] for (_, f, _), m in zip(recorded, keep)])
                self._timed("coder", encoder.encode, symbols, freqs)
                first += len(row)
                bar.update(1)
        bar.close()
        return ideal

    def _decode_symbols(self, header, decoder) -> np.ndarray:
        image = np.zeros((header.height, header.width, header.channels), dtype=np.uint8)
        rows = patch_rows(header.height, header.width, header.patch_height, header.patch_width)
        for row in tqdm(rows, desc="decode", unit="row", disable=not self.progress):
            def source(k, active, freqs, log_probs):
                return self._timed("coder", decoder.decode, freqs)

            values = self._predict(image, row, source)
            for i, p in enumerate(row):
                put_patch(image, p, values[i, :p.height * p.width * header.channels])
        return image


def patch_rows(height: int, width: int, patch_height: int, patch_width: int) -> list[list[Patch]]:
    """The patch grid as rows: the units decoded one after another."""
    grid = patch_grid(height, width, patch_height, patch_width)
    per_row = -(-width // patch_width)
    return [grid[i:i + per_row] for i in range(0, len(grid), per_row)]


def deterministic_cuda() -> None:
    """Settings of the CUDA numeric mode (process-wide: torch has no per-call switch): full float32
    matmuls, deterministic kernels. cuBLAS reads its workspace setting when it starts, so this runs
    before the model reaches the GPU."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)

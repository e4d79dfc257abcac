"""The codec of online bundles: the compiled online engine (trainer.engine), no network.

Every probability is decided by integer arithmetic, or, in the `max` preset, by float64 least
squares in a fixed operation order: the same bytes on every machine, thread count and CPU kernel
level (tests/test_engine.py decodes golden streams with the kernels compiled for each). Images of
1 to 4 channels are coded as they are; the channels of a pixel are coded in order, each seeing
the ones before it. Stripes of the bundle's `stripe_rows` rows are coded on separate threads.
"""

import numpy as np

from trainer.codec.container import Header
from trainer.codec.stream import CodecError, StreamCodec
from trainer.engine import coder
from trainer.engine.settings import EngineSettings


class OnlineCodec(StreamCodec):
    layout = (1, 1)

    def __init__(self, bundle, batch_size: int | None = None, threads: int | None = None, progress: bool = True,
                 fallback: bool = True):
        """`batch_size` and `progress` are accepted and ignored (an image takes a second or so);
        `threads`: stripes coded at once (None: `trainer.cpu.get_threads()`: torch's setting where torch
        is loaded, as for every codec, else every CPU; no torch is imported)."""
        super().__init__(bundle, progress, fallback)
        self.settings: EngineSettings = self.bundle.engine
        self.numeric_mode = "online-v1"  # integer arithmetic, and float64 least squares in a fixed order
        self.threads = threads
        self.portable = True
        self.strongest_fallbacks = bool(self.settings.fallback_best)

    @property
    def cores(self) -> int:
        """Threads coding stripes at once: the given count, else torch's setting where torch is loaded
        (the bench's), else every CPU this process may use."""
        from trainer.cpu import get_threads

        return self.threads or get_threads()

    def _fallbacks(self, model: bool = True) -> list:
        from functools import partial

        from trainer.codec import fallback

        out = [(fallback.MODE, fallback.encode)] if self.settings.fallback_webp or not model else []
        if self.settings.fallback_jxl:
            out.append((fallback.JXL_MODE, partial(fallback.encode_jxl, effort=self.settings.fallback_jxl)))
        return out

    def _code(self, image: np.ndarray, bits: np.ndarray | None) -> tuple[bytes, float]:
        return self._timed("engine", coder.encode, image, self.settings, self.model, self.cores, bits)

    def _decode_payload(self, header: Header, payload: bytes) -> np.ndarray:
        shape = (header.height, header.width, header.channels)
        try:
            return self._timed("engine", coder.decode, payload, shape, self.settings, self.model, self.cores)
        except coder.PayloadError as err:
            raise CodecError(f"damaged payload: {err}") from None

"""Entropy coding, apart from any model: integer frequency tables and constriction's range coder.

`quantize` turns the model's 256-way log-probabilities into integer frequencies of a fixed
precision: every symbol gets at least 1, and each row sums to exactly 2**precision. Encoder and
decoder both call it on bit-identical log-probabilities (see codec.py for how those are made
reproducible), so they get bit-identical tables; the coder then sees exact dyadic probabilities
freq / 2**precision, which constriction represents without rounding for precision <= 24.

Coder choice: a range coder (constriction.stream.queue), not ANS. A range coder is first-in
first-out: the encoder emits symbols in the order the decoder needs them, step by step, so it
never has to hold or reverse a whole image's probability tables as a stack coder (ANS) would;
both come within ~0.01% of the ideal code length here (environment notes).
"""

import constriction
import numpy as np

from trainer.models.frequencies import quantize  # noqa: F401  (the codecs' one table maker)
from trainer.errors import PixlmError

_FAMILY = constriction.stream.model.Categorical(perfect=False)  # perfect=True is ~400x slower


class StreamError(PixlmError):
    """A payload that cannot be decoded."""


def _probabilities(freqs: np.ndarray, precision: int) -> np.ndarray:
    return freqs / float(1 << precision)  # exact: integers below 2**53 over a power of two


class Encoder:
    def __init__(self, precision: int):
        self.precision, self._coder = precision, constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Append symbols (N,) coded with their frequency tables (N, 256), in order."""
        if len(symbols):
            self._coder.encode(symbols.astype(np.int32), _FAMILY, _probabilities(freqs, self.precision))

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class Decoder:
    def __init__(self, payload: bytes, precision: int):
        if len(payload) % 4:
            raise StreamError("payload length is not a whole number of 32-bit words")
        self.precision = precision
        self._coder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        """Next len(freqs) symbols, as uint8."""
        if not len(freqs):
            return np.zeros(0, dtype=np.uint8)
        try:
            symbols = self._coder.decode(_FAMILY, _probabilities(freqs, self.precision))
        except Exception as err:  # constriction raises AssertionError, ValueError or RuntimeError on garbage
            raise StreamError(f"payload cannot be decoded ({type(err).__name__}: {err})") from None
        return np.asarray(symbols).astype(np.uint8)

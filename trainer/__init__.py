"""pixlm: causal models as lossless image codecs (see README.md)."""

__version__ = "0.3.0"

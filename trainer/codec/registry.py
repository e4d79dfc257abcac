"""From a bundle to its codec: the one place that knows every codec (no import cycle between them)."""

from pathlib import Path

from trainer.codec.bundle import Bundle, open_bundle
from trainer.codec.container import Header, unpack


def open_codec(bundle, **kwargs):
    """The codec a bundle needs: `Codec` for LM bundles, `ContextCodec` for context students."""
    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    if bundle.kind == "context":
        from trainer.codec.wavefront import ContextCodec

        return ContextCodec(bundle, **kwargs)
    from trainer.codec.patch import Codec

    return Codec(bundle, **kwargs)


def read_header(path) -> Header:
    return unpack(Path(path).read_bytes())[0]

"""From a bundle to its codec, as its kind's entry in trainer.codec.kinds names it (no import cycle
between the codecs)."""

from pathlib import Path

from trainer.codec.bundle import Bundle, open_bundle
from trainer.codec.container import unpack


def open_codec(bundle, device: str = "cpu", **kwargs):
    """The codec a bundle's kind names (trainer.codec.kinds): `PatchCodec` for LM bundles (on the CPU or
    a CUDA GPU), `WavefrontCodec` for context students (CPU), `OnlineCodec` for the online engine (CPU)."""
    from trainer.codec import kinds

    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    bundle.require()  # network bundles: torch installed, or one line naming the extra
    kind = kinds.named(bundle.kind)
    if kind.cpu_only:
        if device != "cpu":
            from trainer.codec.stream import CodecError

            raise CodecError(f"{kind.name} bundles code on the CPU (their streams decode anywhere); device={device}")
        return kind.codec_class()(bundle, **kwargs)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from trainer.codec.stream import CodecError

            raise CodecError(f"device={device}: torch sees no CUDA GPU here")
    return kind.codec_class()(bundle, device=device, **kwargs)


def stream_bundle_id(path) -> bytes:
    """The 16-byte bundle id a stream names (any format version), checked as far as the header goes."""
    from trainer.codec import envelope

    data = Path(path).read_bytes()
    if envelope.is_envelope(data):
        return envelope.unpack(data).bundle_id
    return unpack(data)[0].bundle_id

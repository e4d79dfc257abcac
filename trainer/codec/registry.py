"""From a bundle to its codec: the one place that knows every codec (no import cycle between them)."""

from pathlib import Path

from trainer.codec.bundle import Bundle, open_bundle
from trainer.codec.container import unpack


def open_codec(bundle, device: str = "cpu", **kwargs):
    """The codec a bundle needs: `PatchCodec` for LM bundles (on the CPU or a CUDA GPU), `WavefrontCodec`
    for context students (CPU), `OnlineCodec` for the online engine (CPU)."""
    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    bundle.require()  # network bundles: torch installed, or one line naming the extra
    if bundle.kind == "online":
        from trainer.codec.online import OnlineCodec

        if device != "cpu":
            from trainer.codec.stream import CodecError

            raise CodecError(f"online bundles code on the CPU (their streams decode anywhere); device={device}")
        return OnlineCodec(bundle, **kwargs)
    if bundle.kind == "context":
        from trainer.codec.wavefront import WavefrontCodec

        if device != "cpu":
            from trainer.codec.stream import CodecError

            raise CodecError(f"context bundles code on the CPU (their integer streams decode anywhere); device={device}")
        return WavefrontCodec(bundle, **kwargs)
    from trainer.codec.patch import PatchCodec

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from trainer.codec.stream import CodecError

            raise CodecError(f"device={device}: torch sees no CUDA GPU here")
    return PatchCodec(bundle, device=device, **kwargs)


def stream_bundle_id(path) -> bytes:
    """The 16-byte bundle id a stream names (any format version), checked as far as the header goes."""
    from trainer.codec import envelope

    data = Path(path).read_bytes()
    if envelope.is_envelope(data):
        return envelope.unpack(data).bundle_id
    return unpack(data)[0].bundle_id

"""`--threads N` reaches the integer network bundle: coding runs on N torch threads, same bytes
(the online bundles' threads: tests/test_engine.py)."""

import numpy as np
import torch

import sys
from pathlib import Path

from trainer.codec.bundle import open_bundle
from trainer.codec.registry import open_codec

sys.path.insert(0, str(Path(__file__).parent))
from odd_images import reference_samples  # noqa: E402

V5 = Path(__file__).resolve().parent.parent / "checkpoints" / "pixlm-context-v5"


def test_threads_change_the_threads_used_not_the_bytes(photos, tmp_path, monkeypatch):
    original = reference_samples(photos[1])[40:56, 60:84]  # an independent decoder's samples
    assert original.max() < 256  # an 8-bit photo: the cast below keeps every sample
    image = original.astype(np.uint8)
    seen = {}
    streams = {}
    for threads in (1, 2):
        codec = open_codec(open_bundle(V5), threads=threads, progress=False, fallback=False)
        for name in ("_encode_symbols", "_decode_symbols"):
            inner = getattr(codec, name)

            def spy(*args, _inner=inner, _key=(threads, name)):
                seen[_key] = torch.get_num_threads()
                return _inner(*args)

            monkeypatch.setattr(codec, name, spy)
        torch.set_num_threads(1 if threads == 2 else 2)  # the caller's setting must not decide
        codec.encode(image, tmp_path / f"{threads}.pxl")
        decoded, _ = codec.decode(tmp_path / f"{threads}.pxl")
        assert np.array_equal(decoded, image)
        streams[threads] = (tmp_path / f"{threads}.pxl").read_bytes()
    assert seen == {(1, "_encode_symbols"): 1, (1, "_decode_symbols"): 1,
                    (2, "_encode_symbols"): 2, (2, "_decode_symbols"): 2}
    assert streams[1] == streams[2]

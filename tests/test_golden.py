"""Golden streams (tests/expected): the shipped bundles' streams decode bit-exactly on this machine and
re-encode to the same bytes, so the format, the model path and the adaptation stay pinned."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.codec.registry import open_codec
from trainer.codec.container import VERSION, unpack

EXPECTED = Path(__file__).parent / "expected"
CHECKPOINTS = Path(__file__).parent.parent / "checkpoints"
IMAGE = EXPECTED / "astronaut-32x20.png"


@pytest.mark.parametrize("bundle,container_version", [("pixlm-context-v1", 1), ("pixlm-context-v2", 2)])
def test_golden_stream_decodes_and_reencodes_identically(bundle, container_version, tmp_path):
    golden = EXPECTED / f"astronaut-32x20.context-{bundle.rsplit('-', 1)[1]}.pxl"
    data = golden.read_bytes()
    assert data[4] == container_version  # v1: written by the pixlm before online adaptation existed
    codec = open_codec(CHECKPOINTS / bundle, progress=False)
    decoded, _ = codec.decode(golden, tmp_path / "back.png")
    assert np.array_equal(decoded, np.asarray(Image.open(IMAGE)))
    codec.encode(IMAGE, tmp_path / "again.pxl")
    again = (tmp_path / "again.pxl").read_bytes()
    assert again[4] == VERSION
    assert unpack(again) == unpack(data)  # same header fields and payload; only the version byte may be newer
    if container_version == VERSION:
        assert again == data

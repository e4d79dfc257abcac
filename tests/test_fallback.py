"""The lossless-WebP fallback (trainer.codec.fallback): flat synthetic images get the smaller
stream, photos keep the model's, every mode round-trips exactly, and bad fallback streams fail
with one clear error."""

import dataclasses
import io
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image, ImageDraw

from trainer.codec import fallback
from trainer.codec.container import FALLBACK_VERSION, VERSION, FormatError, pack, unpack
from trainer.codec.registry import open_codec
from trainer.codec.stream import CodecError

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "checkpoints" / "pixlm-context-v3"
GOLDEN = Path(__file__).resolve().parent / "expected"


def screenshot(width=64, height=48) -> Image.Image:
    """Flat fills, hard edges and text: what a photo model codes worst."""
    image = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 9), fill=(40, 60, 110))
    draw.text((3, 12), "pixlm", fill=(20, 20, 20))
    draw.rectangle((30, 26, 60, 44), fill=(230, 80, 60), outline=(0, 0, 0))
    return image


@pytest.fixture(scope="module")
def codecs():
    return {on: open_codec(BUNDLE, progress=False, fallback=on) for on in (True, False)}


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_mode_round_trips_exactly_including_hidden_colour_under_zero_alpha(channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (13, 17, channels), dtype=np.uint8)
    if channels in (2, 4):
        image[:4, :, -1] = 0  # fully transparent pixels keep their (random) colour
    data = fallback.encode(image)
    assert data is not None
    assert np.array_equal(fallback.decode(data, 13, 17, channels), image)


def test_a_flat_image_gets_the_webp_stream_smaller_than_the_models(codecs, tmp_path):
    image = screenshot()
    model = codecs[False].encode(image, tmp_path / "model.pxl")
    shipped = codecs[True].encode(image, tmp_path / "flat.pxl")
    assert shipped.fallback and not model.fallback
    assert shipped.file_bytes < model.file_bytes
    data = (tmp_path / "flat.pxl").read_bytes()
    header, _ = unpack(data)
    assert data[4] == FALLBACK_VERSION and header.numeric_mode == fallback.MODE
    for codec in codecs.values():  # any decoder reads it, whatever its own encoder setting
        decoded, _ = codec.decode(tmp_path / "flat.pxl")
        assert np.array_equal(decoded, np.asarray(image))


def test_a_photo_keeps_the_models_stream(codecs, tmp_path):
    """The golden photo crop: the model's stream is the smaller one, so nothing changes for photos."""
    image = Image.open(GOLDEN / "astronaut-32x20.png")
    report = codecs[True].encode(image, tmp_path / "photo.pxl")
    assert not report.fallback
    data = (tmp_path / "photo.pxl").read_bytes()
    assert data[4] == VERSION and unpack(data)[0].numeric_mode == codecs[True].numeric_mode
    assert report.file_bytes < len(fallback.encode(np.asarray(image.convert("RGB"))))


def test_bad_fallback_streams_fail_with_one_clear_error(codecs, tmp_path, monkeypatch):
    image = screenshot()
    codecs[True].encode(image, tmp_path / "flat.pxl")
    header, payload = unpack((tmp_path / "flat.pxl").read_bytes())
    other = fallback.encode(np.asarray(screenshot(32, 48)))
    cases = {
        "garbage": (pack(header, bytes(range(256)) * 4), CodecError, "does not decode"),
        "wrong size": (pack(header, other), CodecError, "header says 64x48"),
        "truncated": (pack(header, payload[:len(payload) // 2]), CodecError, "does not decode"),
        "too large for WebP": (pack(dataclasses.replace(header, width=20000), payload), FormatError, "invalid header"),
    }
    for name, (data, error, message) in cases.items():
        (tmp_path / "bad.pxl").write_bytes(data)
        with pytest.raises(error, match=message):
            codecs[True].decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
        assert not (tmp_path / "bad.png").exists(), name
    # a model stream written as version 3 (the fallback's), with valid CRCs, is refused
    from trainer.codec import container

    monkeypatch.setattr(container, "VERSION", FALLBACK_VERSION)
    (tmp_path / "bad.pxl").write_bytes(pack(dataclasses.replace(header, numeric_mode=codecs[True].numeric_mode), payload))
    with pytest.raises(FormatError, match="invalid header fields"):
        codecs[True].decode(tmp_path / "bad.pxl")


def test_cli_keeps_the_models_stream_with_no_fallback(tmp_path):
    from trainer.cli import main

    screenshot(24, 16).save(tmp_path / "s.png")
    # the default bundle (pixlm-online-max) falls back to a classical codec on a screenshot
    for flag, name, fell_back in (([], "shipped.pxl", True), (["--no-fallback"], "model.pxl", False)):
        assert main(["encode", str(tmp_path / "s.png"), str(tmp_path / name), "--quiet", *flag]) == 0
        header, _ = unpack((tmp_path / name).read_bytes())
        assert (header.numeric_mode in fallback.MODES) == fell_back
        assert main(["decode", str(tmp_path / name), str(tmp_path / f"{name}.png"), "--quiet"]) == 0
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{name}.png")), np.asarray(screenshot(24, 16)))


def test_the_strongest_classical_modes_are_tried_only_where_a_fallback_came_near(tmp_path, monkeypatch):
    """The online bundles (`fallback_best`): on a screenshot, where their JPEG-XL comes near the
    engine, the stream is the smallest of the engine's, that JPEG-XL's, WebP method 6's and JPEG-XL
    effort 10's; on a photo, where the engine's is far smaller, the slow modes are never run."""
    image = np.asarray(screenshot(96, 64))
    for preset, effort in (("max", 9), ("fast", 2)):
        codec = open_codec(ROOT / "checkpoints" / f"pixlm-online-{preset}", progress=False)
        engine = open_codec(ROOT / "checkpoints" / f"pixlm-online-{preset}", progress=False, fallback=False)
        data, report = codec.encode_bytes(image)
        sizes = [len(unpack(engine.encode_bytes(image)[0])[1]), len(fallback.encode_jxl(image, effort)),
                 len(fallback.encode(image, method=6)), len(fallback.encode_jxl(image, 10))]
        header, payload = unpack(data)
        assert report.fallback and len(payload) == min(sizes) < min(sizes[:2]), (preset, sizes)
        assert np.array_equal(codec.decode_picture(data).samples, image)
        # and by the classical codec's own decoder, at full depth
        independent = (np.asarray(Image.open(io.BytesIO(payload)).convert("RGB")) if header.numeric_mode == fallback.MODE
                       else imagecodecs.jpegxl_decode(payload))
        assert independent.dtype == np.uint8 and np.array_equal(independent, image)
    tried = []
    monkeypatch.setattr(fallback, "strongest", lambda: tried.append(1) or [])
    photo = Image.open(GOLDEN / "astronaut-64x40.png")
    assert not codec.encode_bytes(photo)[1].fallback and not tried
    monkeypatch.setattr(fallback, "NEAR", 100.0)  # the same photo, were the fallback near: tried
    codec.encode_bytes(photo)
    assert tried

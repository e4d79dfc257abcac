"""The online engine (trainer/engine) and its codec: exact round trips of every shape and channel
count, the same bytes on every thread count and CPU kernel level, damaged payloads refused (memory on
large images: tests/test_bands.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from trainer.codec.bundle import BundleError, open_bundle, write_manifest
from trainer.codec.registry import open_codec
from trainer.codec.stream import CodecError
from trainer.engine import coder, rangecoder
from trainer.engine.settings import PRESETS, EngineSettings, EngineSettingsError
from trainer.engine.tables import make_tables
from trainer.export import export_online

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests" / "expected"
TABLES = make_tables()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("online")
    return {"fast": export_online(root / "fast", "fast").path, "max": export_online(root / "max", "max").path,
            "striped": export_online(root / "striped", "fast", {"stripe_rows": 16}).path,
            "rls": export_online(root / "rls", "max", {"ols": 1, "parity": 1}).path}


def photo(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    source = np.asarray(Image.open(EXPECTED / "astronaut-64x40.png").convert("RGB"))
    rng = np.random.default_rng(seed)
    tiled = np.tile(source, (height // 40 + 1, width // 64 + 1, 2))[:height, :width, :channels]
    return np.ascontiguousarray(tiled)


def test_range_coder_round_trips_any_intervals():
    """Random intervals of 2**16, from certain (freq 65535) to the rarest (freq 1): decoded exactly."""
    rng = np.random.default_rng(1)
    cums = np.sort(rng.integers(0, 1 << 16, size=(3000, 2)), axis=1)
    cums[:, 1] = np.maximum(cums[:, 1], cums[:, 0] + 1)
    cums[:5] = [[0, 1], [65535, 65536], [0, 65535], [1, 65536], [30000, 30001]]
    state, out = rangecoder.new_encoder(2 * len(cums) + 64)
    for low, high in cums:
        rangecoder.encode(state, out, low, high - low)
    data = out[:rangecoder.finish(state, out)].copy()
    state, data = rangecoder.new_decoder(data)
    for low, high in cums:
        target = rangecoder.target(state)
        assert low <= target < high
        rangecoder.consume(state, data, low, high - low)


def test_range_coder_round_trips_any_totals():
    """Intervals of totals from 2 to 2**16 (the mixing stage codes a magnitude class's values as one
    symbol of their own total): decoded exactly, interleaved with binary decisions of 2**16."""
    rng = np.random.default_rng(2)
    symbols = []
    for _ in range(3000):
        total = int(rng.integers(2, (1 << 16) + 1))
        low = int(rng.integers(0, total))
        symbols.append((low, int(rng.integers(1, total - low + 1)), total))
    state, out = rangecoder.new_encoder(4 * len(symbols) + 64)
    for low, freq, total in symbols:
        rangecoder.encode_of(state, out, low, freq, total)
        rangecoder.encode(state, out, 0, 1 + low % 65535)
    data = out[:rangecoder.finish(state, out)].copy()
    state, data = rangecoder.new_decoder(data)
    for low, freq, total in symbols:
        assert low <= rangecoder.target_of(state, total) < low + freq
        rangecoder.consume_of(state, data, low, freq, total)
        assert rangecoder.target(state) < 1 + low % 65535
        rangecoder.consume(state, data, 0, 1 + low % 65535)


# the presets, and the engine without its mixing stage (the value coded under the logistic directly)
SETTINGS = {"fast": PRESETS["fast"], "max": PRESETS["max"], "plain": EngineSettings(**{**PRESETS["fast"].to_dict(), "mix": 0, "seen": 0})}


def edge_images(shape: tuple, seed: int) -> list[np.ndarray]:
    """Random values, all 0, all 255, only 0 and 255 (predictions at both ends of the range), a photo."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8),
            (rng.integers(0, 2, shape) * 255).astype(np.uint8), photo(*shape)]


@pytest.mark.parametrize("preset", list(SETTINGS))
@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 37, 3), (29, 1, 3), (17, 23, 1), (13, 19, 2), (21, 18, 4)])
def test_every_shape_and_channel_count_round_trips(preset, shape):
    for image in edge_images(shape, shape[0] * 100 + shape[1]):
        payload, ideal = coder.encode(image, SETTINGS[preset], TABLES)
        assert np.array_equal(coder.decode(payload, shape, SETTINGS[preset], TABLES), image)
        assert 8 * len(payload) >= ideal - 1e-6  # no coder beats its model's code length


BOUNDS = """
import numpy as np
from tests.test_engine import SETTINGS, TABLES, edge_images
from trainer.engine import coder
for name, settings in SETTINGS.items():
    for channels in (1, 2, 3, 4):
        for shape in ((1, 1), (3, 41), (19, 2), (24, 24)):
            for image in edge_images((*shape, channels), channels):
                payload, _ = coder.encode(image, settings, TABLES, threads=1)
                assert np.array_equal(coder.decode(payload, image.shape, settings, TABLES, threads=1), image)
from benchmarks.make_video_set import video_frame  # the lattice's kernels: a frame it finds
from tests.test_lattice import scene
frame = np.ascontiguousarray(video_frame(scene(64, 64)))
payload, _ = coder.encode(frame, SETTINGS["fast"], TABLES, threads=1)
assert payload[0] & 32 and np.array_equal(coder.decode(payload, frame.shape, SETTINGS["fast"], TABLES, threads=1), frame)
print("ok")
"""


def test_the_kernels_index_only_inside_their_arrays(tmp_path):
    """The compiled kernels do not check indices: every setting, channel count, edge shape and
    extreme image is coded with numba's bounds checks compiled in (a fresh cache), so a context
    index past its table fails here instead of reading another array's memory."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", BOUNDS], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_the_mixing_stage_codes_photos_and_subsampled_colour_in_fewer_bits():
    """The stage must earn its time: a photo crop and an image with 4:2:0-like colour code smaller
    with it than under the logistic alone, in the same settings otherwise."""
    for image in (photo(64, 96, seed=1), subsampled_image()):
        mixed, _ = coder.encode(image, SETTINGS["fast"], TABLES)
        plain, _ = coder.encode(image, SETTINGS["plain"], TABLES)
        assert len(mixed) < 0.97 * len(plain)


def test_a_photo_codes_well_below_png_with_little_coder_overhead(photos):
    import imagecodecs

    image = np.ascontiguousarray(np.asarray(Image.open(photos[0]).convert("RGB"))[100:196, 100:228])
    for preset in ("fast", "max"):
        payload, ideal = coder.encode(image, PRESETS[preset], TABLES)
        assert len(payload) < 0.8 * len(imagecodecs.png_encode(image, level=9))
        assert abs(8 * len(payload) - ideal) < 0.005 * ideal + 64  # the range coder's overhead is small


@pytest.mark.parametrize("preset", ["fast", "max"])
def test_stripes_and_threads_change_time_not_bytes(preset):
    """Stripes are independent: 1 or 4 threads give the same payload, each stripe decodes on its own."""
    image = photo(70, 50, seed=3)
    settings = EngineSettings(**{**PRESETS[preset].to_dict(), "stripe_rows": 16})
    one, _ = coder.encode(image, settings, TABLES, threads=1)
    four, _ = coder.encode(image, settings, TABLES, threads=4)
    assert one == four and len(coder.stripes(70, settings)) == 5
    assert np.array_equal(coder.decode(one, image.shape, settings, TABLES, threads=3), image)
    whole, _ = coder.encode(image, PRESETS[preset], TABLES)
    assert whole != one  # the stripes really restart


def subsampled_image() -> np.ndarray:
    """Colour differences that repeat over 2x2 blocks, as in a decoded 4:2:0 JPEG."""
    rng = np.random.default_rng(7)
    luma = np.clip(np.cumsum(rng.integers(-6, 7, (64, 96)), axis=1) // 3 + 128, 16, 235)
    chroma = np.repeat(np.repeat(rng.integers(-20, 21, (32, 48, 2)), 2, 0), 2, 1)
    return np.clip(np.stack([luma + chroma[..., 0], luma, luma + chroma[..., 1]], -1)
                   + rng.integers(0, 2, (64, 96, 3)), 0, 255).astype(np.uint8)


def test_the_encoder_codes_the_channel_that_carries_the_others_first():
    """Luma in the second channel, the others luma plus 4:2:0-like colour (a camera JPEG's
    pattern): max's encoder chooses green first (payload byte 0, bits 2-3: order 1) and that
    stream is smaller than the one in the given order; the image decodes in its own order."""
    image = subsampled_image()
    chosen, _ = coder.encode(image, PRESETS["max"], TABLES)
    given, _ = coder.encode(image, replace(PRESETS["max"], channel_order=0), TABLES)
    assert chosen[0] >> 2 == 1 and given[0] >> 2 == 0 and len(chosen) < len(given)
    assert np.array_equal(coder.decode(chosen, image.shape, PRESETS["max"], TABLES), image)


def test_an_image_coded_in_another_channel_order_round_trips_through_the_cli(tmp_path):
    """`pixlm encode` / `decode` with the default bundle (max) on an image whose encoder picks green
    first: the PNG written back holds the original samples (read by Pillow, not by pixlm)."""
    from trainer.cli import main
    from trainer.codec.info import stream_info

    Image.fromarray(subsampled_image()).save(tmp_path / "s.png")
    assert main(["encode", str(tmp_path / "s.png"), str(tmp_path / "s.pxl"), "--quiet", "--no-fallback"]) == 0
    assert stream_info((tmp_path / "s.pxl").read_bytes())["engine_choices"]["channel_order"] == "GRB"
    assert main(["decode", str(tmp_path / "s.pxl"), str(tmp_path / "back.png"), "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), subsampled_image())


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("channels", [3, 4])
def test_a_channel_order_codes_the_image_as_its_permutation(order, channels, monkeypatch):
    """An image coded in another channel order is its permuted image coded in the given order (the
    same stream but for byte 0's order bits), alpha left last; code lengths are reported per channel
    of the image given, and the decoder puts the channels back."""
    image = photo(24, 40, channels, seed=4)
    image[..., 1] //= 2  # channels that differ
    permutation = coder.Choice(PRESETS["max"], order).permutation(channels)
    permuted = np.ascontiguousarray(image[..., permutation])
    coded = {}
    for name, picture, pick in (("ordered", image, order), ("permuted", permuted, 0)):
        monkeypatch.setattr(coder, "choose", lambda im, ycc, s, t, threads=None, pick=pick: coder.Choice(replace(s, parity=1), pick))
        lengths = np.zeros(image.shape, np.float32)
        coded[name] = coder.encode(picture, PRESETS["max"], TABLES, lengths=lengths)[0], lengths
    (payload, lengths), (payload_permuted, lengths_permuted) = coded["ordered"], coded["permuted"]
    assert payload[0] == 1 | 2 | order << 2 and payload[1:] == payload_permuted[1:]
    assert np.array_equal(lengths[..., permutation], lengths_permuted) and lengths.sum(axis=(0, 1)).min() > 0
    assert permutation[3:] == list(range(3, channels))
    decoded = coder.decode(payload, image.shape, PRESETS["max"], TABLES)
    assert decoded.flags.c_contiguous and np.array_equal(decoded, image)


def test_images_of_one_or_two_channels_have_no_order_to_choose():
    assert [choice.order for choice in coder.choices(PRESETS["max"], 2)] == [0, 0]
    assert {choice.order for choice in coder.choices(PRESETS["max"], 3)} == {0, 1, 2}


def test_the_encoder_turns_parity_contexts_on_for_chroma_subsampled_images():
    """An image whose colour differences repeat over 2x2 blocks (a decoded 4:2:0 JPEG): the encoder's
    choice (payload byte 0) is parity on, and that stream is smaller than the one without."""
    image = subsampled_image()
    auto, _ = coder.encode(image, PRESETS["fast"], TABLES)
    off, _ = coder.encode(image, EngineSettings(**{**PRESETS["fast"].to_dict(), "parity": 0}), TABLES)
    assert auto[0] == 1 and off[0] == 0 and len(auto) < len(off)
    for payload in (auto, off):
        assert np.array_equal(coder.decode(payload, image.shape, PRESETS["fast"], TABLES), image)


def test_least_squares_per_parity_pay_on_subsampled_chroma_and_change_nothing_without_parity():
    """`ols_parity`: where chroma repeats over 2x2 blocks, what predicts a value depends on where it
    lies in its block; the least squares with a weight set per parity code such an image smaller
    (parity on), and with parity off the stream is the one without them, byte for byte (old max)."""
    image = subsampled_image()
    on, off = (replace(PRESETS["max"], ols_parity=1), replace(PRESETS["max"], ols_parity=0))
    by_parity = {}
    for parity in (0, 1):
        by_parity[parity] = [coder.encode(image, replace(s, parity=parity), TABLES)[0] for s in (on, off)]
        for payload, settings in zip(by_parity[parity], (on, off)):
            assert np.array_equal(coder.decode(payload, image.shape, replace(settings, parity=parity), TABLES), image)
    assert len(by_parity[1][0]) < len(by_parity[1][1])
    assert by_parity[0][0] == by_parity[0][1]


def test_codec_round_trip_through_files_with_an_independent_reader(bundles, tmp_path):
    import imagecodecs

    image = photo(40, 64)
    Image.fromarray(image).save(tmp_path / "in.png")
    for name, bundle in bundles.items():
        codec = open_codec(bundle, progress=False, fallback=False)
        report = codec.encode(tmp_path / "in.png", tmp_path / f"{name}.pxl")
        assert report.representation == "model" and report.model_bpsp < 8
        codec.decode(tmp_path / f"{name}.pxl", tmp_path / f"{name}.png")
        assert np.array_equal(imagecodecs.png_decode((tmp_path / f"{name}.png").read_bytes()), image)


def test_the_jpegxl_fallback_keeps_the_smaller_stream_and_decodes_exactly(bundles, tmp_path):
    """A flat synthetic image (a screenshot's few colours): JPEG-XL codes it in a fraction of the
    engine's bits, so the `fast` bundle's stream is the JPEG-XL one (version 3), decoded exactly;
    a damaged JPEG-XL payload is refused in one line."""
    from trainer.codec.container import pack, unpack

    image = np.full((48, 64, 3), 240, np.uint8)
    image[8:20, 4:60] = (20, 90, 200)
    image[30:44, 10:30] = (250, 30, 30)
    codec = open_codec(bundles["fast"], progress=False)
    report = codec.encode(image, tmp_path / "flat.pxl")
    assert report.representation == "jpegxl-lossless" and report.fallback
    model_only = open_codec(bundles["fast"], progress=False, fallback=False).encode(image, tmp_path / "m.pxl")
    assert report.file_bytes < model_only.file_bytes
    decoded, _ = codec.decode(tmp_path / "flat.pxl")
    assert np.array_equal(decoded, image)
    header, payload = unpack((tmp_path / "flat.pxl").read_bytes())
    (tmp_path / "bad.pxl").write_bytes(pack(header, payload[:len(payload) // 2]))
    with pytest.raises(CodecError, match="damaged payload"):
        codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_damaged_payloads_are_refused_in_one_line(bundles, tmp_path):
    """Flipped bytes, a truncated payload, a stripe table beyond the payload: a CodecError (pixel
    CRC or layout), never a crash, a hang or a written file."""
    from trainer.codec.container import pack, unpack

    image = photo(48, 40, seed=5)
    codec = open_codec(bundles["striped"], progress=False, fallback=False)
    codec.encode(image, tmp_path / "a.pxl")
    header, payload = unpack((tmp_path / "a.pxl").read_bytes())
    rng = np.random.default_rng(0)
    damaged = [payload[:len(payload) // 2], payload[:3], b"\xff" * 12 + payload[12:]]
    for _ in range(8):
        flipped = bytearray(payload)
        flipped[rng.integers(12, len(payload))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(flipped))
    for i, bad in enumerate(damaged):
        (tmp_path / f"bad{i}.pxl").write_bytes(pack(header, bad))
        with pytest.raises(CodecError, match="damaged payload"):
            codec.decode(tmp_path / f"bad{i}.pxl", tmp_path / f"bad{i}.png")
        assert not (tmp_path / f"bad{i}.png").exists()


def test_settings_and_bundles_are_checked(bundles, tmp_path):
    with pytest.raises(EngineSettingsError, match="unknown engine setting"):
        EngineSettings.from_dict({"lms_shfit": 6})
    with pytest.raises(EngineSettingsError, match="stripe_rows"):
        EngineSettings(stripe_rows=3)
    with pytest.raises(EngineSettingsError, match="seen needs mix"):
        EngineSettings(seen=1)  # the seen colours are an input of the mixing stage
    with pytest.raises(BundleError, match="preset"):
        export_online(tmp_path / "p", "medium")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        export_online(tmp_path / "full", "fast")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(BundleError, match="needs a trained network"):  # refused before anything is written
        export_online(tmp_path / "no-net", "max", {"network": 1})
    assert not (tmp_path / "no-net").exists()
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundles["fast"], bad)
    codec = json.loads((bad / "codec.json").read_text())
    codec["engine"]["ols"] = 5
    (bad / "codec.json").write_text(json.dumps(codec))
    write_manifest(bad)
    with pytest.raises(BundleError, match="ols=5"):
        open_bundle(bad)


def rls_payload_size(path: Path) -> int:
    from trainer.codec.container import unpack

    return len(unpack(path.read_bytes())[1])


GOLDEN = {"fast": "astronaut-64x40.online-fast.pxl", "max": "astronaut-64x40.online-max.pxl"}
DECODE_ALL = """
import sys, numpy as np
from PIL import Image
from trainer.codec.registry import open_codec
expected = np.asarray(Image.open(sys.argv[1]))
for stream, bundle in zip(sys.argv[2::2], sys.argv[3::2]):
    for threads in (1, 2):
        decoded, _ = open_codec(bundle, progress=False, threads=threads).decode(stream)
        assert np.array_equal(decoded, expected), (stream, threads)
print("ok")
"""


def cpu_levels() -> list[str]:
    """numba's compile targets for every kernel level this CPU can run: the generic x86-64 (SSE2
    only), AVX2 (haswell; the host itself where AVX2 is its best) and AVX-512 (the host, where it
    has it)."""
    import numba  # noqa: F401
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    return ["generic", "haswell", "host"] if features.get("avx512f") else ["generic", "host"]


@pytest.mark.parametrize("level", cpu_levels())
def test_golden_streams_decode_on_every_cpu_level_and_thread_count(level, bundles, tmp_path):
    """The shipped online bundles' golden streams, and a least-squares stream made here (float64
    arithmetic, where a compiler's freedom would show), decoded with the kernels compiled afresh
    for each CPU target (a fresh numba cache), on 1 and 2 threads: the same pixels."""
    args = []
    for preset, stream in GOLDEN.items():
        args += [str(EXPECTED / stream), str(ROOT / "checkpoints" / f"pixlm-online-{preset}")]
    rls = open_codec(bundles["rls"], progress=False, fallback=False)
    rls.encode(EXPECTED / "astronaut-64x40.png", tmp_path / "rls.pxl")
    assert (tmp_path / "rls.pxl").read_bytes()[-rls_payload_size(tmp_path / "rls.pxl")] & 0b11 == 0b11  # parity, RLS
    args += [str(tmp_path / "rls.pxl"), str(bundles["rls"])]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    if level != "host":
        env["NUMBA_CPU_NAME"] = level
    run = subprocess.run([sys.executable, "-c", DECODE_ALL, str(EXPECTED / "astronaut-64x40.png"), *args],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


@pytest.mark.parametrize("version, unset", [("0.3", ("mix", "ols_wide", "channel_order")), ("0.4", ("channel_order",)),
                                            ("0.5", ("colour",)), ("0.6", ("seen",)), ("0.7", ("lattice",)),
                                            ("0.8", ("ols_parity",))])
def test_payloads_of_earlier_engines_still_decode(version, unset):
    """Payloads made by earlier engines (tests/expected/engine-VERSION: 0.3, before the mixing
    stage, made at commit 936c741: LMS with parity contexts, least squares, the encoder's choice;
    0.4, before the encoder's choice of channel order, made at b2e3230: the fast and max presets
    of then; 0.5, before the JPEG colour transform, the presets of 4c2152c; 0.6, before the seen-colours
    model, the presets of 9a602e8; 0.7, before the lattice found per image, the presets of e109611; 0.8, before the least squares' weight sets per
    parity, the presets of 3e3cd0d) decode to the image with today's kernels under the same settings (later stages at
    their defaults, off) and re-encode to the same bytes: later stages are settings, never silent
    changes of the old path."""
    image = np.asarray(Image.open(EXPECTED / "astronaut-64x40.png").convert("RGB"))
    folder = EXPECTED / f"engine-{version}"
    for name, values in json.loads((folder / "settings.json").read_text()).items():
        settings = EngineSettings.from_dict(values)
        assert all(getattr(settings, key) == 0 for key in unset)
        payload = (folder / f"{name}.payload").read_bytes()
        assert np.array_equal(coder.decode(payload, image.shape, settings, TABLES), image), name
        assert coder.encode(image, settings, TABLES)[0] == payload, name


@pytest.mark.parametrize("preset", ["fast", "max"])
def test_golden_streams_reencode_to_the_same_bytes(preset, tmp_path):
    codec = open_codec(ROOT / "checkpoints" / f"pixlm-online-{preset}", progress=False, fallback=False)
    codec.encode(EXPECTED / "astronaut-64x40.png", tmp_path / "again.pxl")
    assert (tmp_path / "again.pxl").read_bytes() == (EXPECTED / GOLDEN[preset]).read_bytes()


def test_the_codec_codes_on_torchs_thread_setting_unless_told(bundles, monkeypatch):
    """As every codec here, an online codec without `threads` follows torch's setting (what
    `pixlm bench --threads` and `--jobs` set), so a bench at 1 thread codes stripes on 1 thread."""
    import torch

    seen = []
    real = coder.encode
    monkeypatch.setattr(coder, "encode", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    before = torch.get_num_threads()
    try:
        for setting in (1, 2):
            torch.set_num_threads(setting)
            open_codec(bundles["striped"], progress=False, fallback=False).encode_bytes(photo(40, 30))
        open_codec(bundles["striped"], progress=False, fallback=False, threads=3).encode_bytes(photo(40, 30))
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2, 3]


def test_the_engine_stays_small_units_with_settings_by_name():
    """Issue 32's bar for the kernel: no function of trainer/engine over 80 lines, and the kernel
    reads settings by name from a record whose fields are EngineSettings' own (no index to drift)."""
    import ast
    from dataclasses import fields

    from trainer.engine.settings import Params

    for path in sorted((ROOT / "trainer" / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 80, f"{path.name}: {node.name}"
    assert Params._fields == tuple(f.name for f in fields(EngineSettings))
    params = PRESETS["max"].as_params()
    assert all(getattr(params, f.name) == getattr(PRESETS["max"], f.name) for f in fields(EngineSettings))

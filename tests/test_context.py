"""The causal-context student: causality, wavefront order, training/resume, and its codec end to end."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.config import RecipeError, load_recipe
from trainer.models.context import ContextConfig, ContextModel, pixel_grid, scale, wavefronts
from trainer.train.context import ContextTrainConfig, train_context

TINY = ["model.hidden=32", "model.layers=2", "model.head_hidden=16", "model.mixtures=3", "batch_crops=4",
        "crop_size=16", "val_crop_size=24", "val_crops_per_image=1", "mixed_precision=no", "log_every=5",
        "warmup_steps=2", "lr=3e-3"]


def tiny_recipe(tmp_path, crop_dir, *extra):
    return load_recipe("context_student", TINY + [f"output_dir={tmp_path / 'run'}", f"data.train_dirs=[{crop_dir}]",
                                                  "data.val_images=2", *extra], schema=ContextTrainConfig)


@pytest.mark.parametrize("height,width,lag", [(1, 1, 4), (1, 9, 4), (7, 1, 4), (13, 29, 4), (6, 5, 2)])
def test_wavefronts_cover_every_pixel_once_after_its_context(height, width, lag):
    seen = np.full((height, width), -1)
    for t, (ys, xs) in enumerate(wavefronts(height, width, lag)):
        assert (seen[ys, xs] == -1).all()
        seen[ys, xs] = t
    assert (seen >= 0).all()
    cfg = ContextConfig(cols_side=lag - 1)
    for y in range(height):
        for x in range(width):
            for dy, dx in cfg.offsets:
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    assert seen[y + dy, x + dx] < seen[y, x]


def test_no_prediction_reads_a_pixel_the_decoder_does_not_have():
    """Change every pixel the decoder has not yet decoded (later wavefronts, and later channels of
    the pixel itself): the distribution of each channel must not move."""
    torch.manual_seed(0)
    model = ContextModel(ContextConfig(hidden=16, layers=1, head_hidden=8, mixtures=2)).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    order = {}
    for t, (ys, xs) in enumerate(wavefronts(9, 11, model.config.lag)):
        for y, x in zip(ys, xs):
            order[y, x] = t
    with torch.no_grad():
        for (y, x), t in list(order.items())[::3]:
            other = rng.integers(0, 256, image.shape, dtype=np.uint8)
            keep = np.array([[order[i, j] < t for j in range(11)] for i in range(9)])
            for c in range(3):
                mixed = np.where(keep[..., None], image, other)
                mixed[y, x, :c] = image[y, x, :c]
                outs = []
                for array in (image, mixed):
                    canvas = model.pad(torch.from_numpy(array))
                    features = model.features(model.context(canvas, torch.tensor([y]), torch.tensor([x])))
                    outs.append(model.log_probs(features, c, scale(torch.from_numpy(array[y, x, :c]))[None]))
                assert torch.equal(*outs)


def test_codec_probabilities_match_the_training_loss(photos):
    torch.manual_seed(1)
    model = ContextModel(ContextConfig(hidden=16, layers=1, head_hidden=8, mixtures=3)).eval()
    image = torch.from_numpy(np.asarray(Image.open(photos[0]).convert("RGB"))[100:106, 100:107].copy())
    ys, xs = pixel_grid(6, 7)
    with torch.no_grad():
        context = model.context(model.pad(image), ys, xs)
        target = image[ys, xs]
        bits = model(context, target)
        features = model.features(context)
        for c in range(3):
            log_probs = model.log_probs(features, c, scale(target[:, :c]))
            assert torch.allclose(torch.logsumexp(log_probs, 1), torch.zeros(len(ys)), atol=1e-5)
            coded = -log_probs.gather(1, target[:, c:c + 1].long())[:, 0] / np.log(2)
            # Above 14 bits (p < 2**-14) the mixture CDF keeps ~1e-7 absolute: no coded frequency changes.
            sure = bits[:, c] < 14
            assert torch.allclose(coded[sure], bits[sure, c], atol=1e-3, rtol=1e-4)
            assert (coded[~sure] > 13.9).all()


def test_training_lowers_val_bpsp_and_resume_is_exact(tmp_path, crop_dir):
    metrics = train_context(tiny_recipe(tmp_path, crop_dir, "max_steps=80", "eval_every=80", "save_every=40"))
    assert metrics["val_bpsp"] < metrics["initial_val_bpsp"] - 0.05  # measured 4.318 -> 4.160 (from the plane predictor)
    final = tmp_path / "run" / "final"
    assert json.loads((final / "metrics.json").read_text())["steps"] == 80
    # As if interrupted after the state of step 40: resuming gives the same weights as the uninterrupted run.
    split = tmp_path / "split"
    shutil.copytree(tmp_path / "run", split / "run")
    shutil.rmtree(split / "run" / "final")
    shutil.rmtree(split / "run" / "checkpoints" / "checkpoint-0000080")
    resumed = train_context(tiny_recipe(split, crop_dir, "max_steps=80", "eval_every=80", "save_every=40",
                                        "resume=true"))
    assert resumed["val_bpsp"] == metrics["val_bpsp"]
    a = ContextModel.from_pretrained(final).state_dict()
    b = ContextModel.from_pretrained(split / "run" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_errors_are_clear(tmp_path, crop_dir):
    with pytest.raises(RecipeError, match="valid keys"):
        tiny_recipe(tmp_path, crop_dir, "model.widht=3")
    with pytest.raises(RecipeError):
        tiny_recipe(tmp_path, crop_dir, "model.hidden=wide")


@pytest.fixture(scope="module")
def context_bundles(tmp_path_factory, crop_dir):
    """A tiny context student trained for a few seconds, exported as fp32 and int8 bundles."""
    from trainer.export import export_bundle

    root = tmp_path_factory.mktemp("context")
    train_context(tiny_recipe(root, crop_dir, "max_steps=30", "eval_every=30", "save_every=30", "lr=1e-2"))
    return {q: export_bundle(root / "run" / "final", root / f"bundle-{q}", quantize=q).path for q in ("none", "int8")}


def photo_crop(photos, height, width, mode="RGB"):
    array = np.asarray(Image.open(photos[2]).convert("RGB"))
    return Image.fromarray(array[40:40 + height, 70:70 + width]).convert(mode)


@pytest.mark.parametrize("height,width", [(1, 1), (1, 23), (19, 1), (17, 29), (40, 33)])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_context_bundles_round_trip_bit_exact(context_bundles, photos, tmp_path, height, width, quantize):
    from trainer.codec.registry import open_codec

    image = photo_crop(photos, height, width)
    codec = open_codec(context_bundles[quantize], threads=1, progress=False, fallback=False)
    report = codec.encode(image, tmp_path / "x.pxl", bits_map=True)
    decoded, back = codec.decode(tmp_path / "x.pxl", tmp_path / "x.png")
    assert np.array_equal(decoded, np.asarray(image))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), np.asarray(image))
    size = (tmp_path / "x.pxl").stat().st_size
    assert report.file_bytes == back.file_bytes == size and report.bpsp == pytest.approx(8 * size / image.size[0]
                                                                                              / image.size[1] / 3)
    assert report.bits.shape == decoded.shape and report.bits.sum() <= 8 * size


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA"])
def test_an_rgb_context_bundle_codes_every_mode(context_bundles, photos, tmp_path, crop_dir, mode):
    """L as one plane of three equal channels, LA as two, RGBA as RGB then A (issue 9, item 5)."""
    from trainer.codec.registry import open_codec

    image = photo_crop(photos, 17, 23, mode)
    if "A" in mode:  # a real alpha: a soft vertical ramp, not a constant
        array = np.asarray(image).copy()
        array[..., -1] = np.linspace(0, 255, 23, dtype=np.uint8)[None, :]
        image = Image.fromarray(array, mode)
    for bundle in (context_bundles["none"], adaptive_bundle(context_bundles["none"].parent, crop_dir)):
        codec = open_codec(bundle, progress=False, fallback=False)  # the model's planes, not WebP's
        report = codec.encode(image, tmp_path / "m.pxl", bits_map=True)
        decoded, _ = codec.decode(tmp_path / "m.pxl", tmp_path / "m.png")
        assert decoded.shape == (17, 23, len(mode)) and np.array_equal(decoded, np.asarray(image).reshape(decoded.shape))
        assert Image.open(tmp_path / "m.png").mode == mode
        assert report.bits.shape == decoded.shape and report.bits.sum() <= 8 * report.file_bytes


def test_context_stream_is_the_same_with_one_or_two_threads(context_bundles, photos, tmp_path):
    from trainer.codec.registry import open_codec

    image = photo_crop(photos, 24, 40)
    streams = []
    for threads in (1, 2, 1):
        open_codec(context_bundles["none"], threads=threads, progress=False).encode(image, tmp_path / "t.pxl")
        streams.append((tmp_path / "t.pxl").read_bytes())
    assert streams[0] == streams[1] == streams[2]


def test_context_codec_refuses_bad_streams_and_other_channel_counts(context_bundles, photos, tmp_path):
    from trainer.codec.stream import CodecError
    from trainer.codec.registry import open_codec
    from trainer.codec.container import FormatError

    codec = open_codec(context_bundles["none"], threads=1, progress=False)
    codec.encode(photo_crop(photos, 12, 12), tmp_path / "ok.pxl")
    data = (tmp_path / "ok.pxl").read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2 + 30] ^= 0x10
    for bad in (data[:len(data) - 3], bytes(flipped), b""):
        (tmp_path / "bad.pxl").write_bytes(bad)
        with pytest.raises((FormatError, CodecError)):
            codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
        assert not (tmp_path / "bad.png").exists()
    # A stream of the int8 bundle names another bundle id.
    with pytest.raises(CodecError, match="encoded with bundle"):
        open_codec(context_bundles["int8"], threads=1, progress=False).decode(tmp_path / "ok.pxl")


def test_bench_runs_a_context_bundle_beside_a_baseline(context_bundles, photos, tmp_path):
    from trainer.bench.run import run

    data = tmp_path / "set"
    data.mkdir()
    for i, size in enumerate(((20, 28), (9, 13))):
        photo_crop(photos, *size).save(data / f"c{i}.png")
    report = run([data], [context_bundles["int8"]], "png", tmp_path / "report", threads=1, progress=False)
    totals = report["sets"][0]["codecs"]
    bundle = next(v for k, v in totals.items() if k != "png")
    assert bundle["decodes_exact"] == bundle["decodes_tried"] == 2 and totals["png"]["images_ok"] == 2
    assert (tmp_path / "report" / "report.md").is_file()


def test_the_shipped_bundles_are_intact_and_the_cli_default_is_online_max(photos, tmp_path):
    """checkpoints/pixlm-online-max (git-tracked) is what `pixlm encode` uses without --bundle; the
    network bundle v5 beside it is intact."""
    import os
    import subprocess
    import sys

    from trainer.codec.bundle import DEFAULT_BUNDLE, open_bundle

    bundle = open_bundle(DEFAULT_BUNDLE)  # every file against its sha256
    assert bundle.kind == "online" and DEFAULT_BUNDLE.name == "pixlm-online-max"
    v5 = open_bundle(DEFAULT_BUNDLE.parent / "pixlm-context-v5")
    assert v5.kind == "context" and v5.quantization == "integer"
    photo_crop(photos, 21, 30).save(tmp_path / "p.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXLM_BUNDLES": ""}
    run = lambda *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a), "--quiet"], env=env,
                                    capture_output=True, text=True)
    enc = run("encode", tmp_path / "p.png", tmp_path / "p.pxl")
    assert enc.returncode == 0 and "bpsp" in enc.stdout, enc.stderr
    from trainer.codec.info import stream_info

    assert stream_info((tmp_path / "p.pxl").read_bytes())["bundle_name"] == "pixlm-online-max"
    dec = run("decode", tmp_path / "p.pxl", tmp_path / "back.png")
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), np.asarray(Image.open(tmp_path / "p.png")))


def test_training_crops_are_gathered_as_the_codec_gathers_them(photos):
    """ImageStack.crops reads each crop's context from the whole padded image: the codec's context."""
    from trainer.models.context import ImageStack

    model = ContextModel(ContextConfig(hidden=8, layers=1, head_hidden=8, mixtures=2, classical=True))
    images = [np.asarray(Image.open(p).convert("RGB"))[:37 + 9 * i, :41 + 5 * i].copy() for i, p in enumerate(photos[:3])]
    stack = ImageStack(images, model)
    rng = np.random.default_rng(3)
    contexts, targets = stack.crops(model, 5, 8, np.random.default_rng(3))
    chosen = rng.integers(3, size=5)  # the same draws as inside crops()
    limits = stack.sizes[chosen] - 8 + 1
    ys0 = (rng.random(5) * limits[:, 0].numpy()).astype(np.int64)
    xs0 = (rng.random(5) * limits[:, 1].numpy()).astype(np.int64)
    for k, (i, y0, x0) in enumerate(zip(chosen, ys0, xs0)):
        ys, xs = pixel_grid(8, 8)
        image = torch.from_numpy(images[i])
        expected = model.context(model.pad(image), ys + int(y0), xs + int(x0))
        assert torch.equal(contexts[64 * k:64 * (k + 1)], expected)
        assert torch.equal(targets[64 * k:64 * (k + 1)], image[ys + int(y0), xs + int(x0)])


def test_classical_inputs_need_their_neighbours_and_follow_med():
    from trainer.models.context import STEP, _classical_indices, _med_gap

    with pytest.raises(ValueError, match="classical=true needs"):
        ContextModel(ContextConfig(rows_above=1, classical=True))
    cfg = ContextConfig()
    at = _classical_indices(cfg.offsets)
    pixels = torch.zeros(3, len(cfg.offsets), 1)
    for row, (w, n, nw) in enumerate(((10, 20, 25), (10, 20, 5), (10, 20, 15))):
        pixels[row, at["w"]], pixels[row, at["n"]], pixels[row, at["nw"]] = w * STEP, n * STEP, nw * STEP
    med, gap = _med_gap(pixels, at)
    assert torch.allclose(med[:, 0] / STEP, torch.tensor([10.0, 20.0, 15.0]), atol=1e-4)  # min, max, W+N-NW
    assert gap.shape == med.shape


def adaptive_bundle(root, crop_dir, block=32, lr=1e-3, delay=0, every=1):
    from trainer.export import export_bundle
    from trainer.config import Adaptation

    out = root / f"adaptive-{block}-{delay}-{every}"
    if not out.exists():
        export_bundle(root / "run" / "final", out, adaptation=Adaptation(block, lr, 1, delay, every))
    return out


def test_adaptive_bundle_round_trips_bit_exact_and_adapts(context_bundles, photos, tmp_path, crop_dir):
    from trainer.codec.adapt import adapted_bpsp
    from trainer.codec.registry import open_codec

    root = context_bundles["none"].parent
    image = photo_crop(photos, 48, 64)  # teacher-forced: 4.895 static, 4.780 adapted (measured)
    adaptive = open_codec(adaptive_bundle(root, crop_dir), progress=False, fallback=False)
    assert adaptive.numeric_mode.endswith("-adam-b32-lr0.001-s1")
    report = adaptive.encode(image, tmp_path / "a.pxl")
    decoded, _ = adaptive.decode(tmp_path / "a.pxl", tmp_path / "a.png")
    assert np.array_equal(decoded, np.asarray(image))
    static = open_codec(context_bundles["none"], progress=False, fallback=False).encode(image, tmp_path / "s.pxl")
    # The adaptation really moved the weights: another stream, and fewer bits than the static model.
    assert report.file_bytes < static.file_bytes
    assert adaptive.model.state_dict()["skips.0.weight"].equal(
        open_codec(context_bundles["none"], progress=False).model.state_dict()["skips.0.weight"])  # bundle untouched
    # The teacher-forced study path gives the codec's size to within a few hundredths of a bit.
    model = adaptive.model
    array = np.asarray(image)
    assert adapted_bpsp(model, array, adaptive.bundle.adaptation) == pytest.approx(report.model_bpsp, abs=0.02)
    assert adapted_bpsp(model, array, None) == pytest.approx(static.model_bpsp, abs=0.02)


@pytest.mark.parametrize("delay,every", [(1, 1), (0, 2)])
def test_sampled_and_second_core_adaptation_round_trip_deterministically(context_bundles, photos, tmp_path, crop_dir,
                                                                        delay, every):
    """Training in a worker thread one block late, or on every other pixel: still bit-exact, the
    same bytes on every run whatever the threads' timing, and another schedule of weights than the
    plain adaptation (another stream)."""
    from trainer.codec.adapt import adapted_bpsp
    from trainer.codec.container import unpack
    from trainer.codec.registry import open_codec

    root = context_bundles["none"].parent
    image = photo_crop(photos, 48, 64)
    codec = open_codec(adaptive_bundle(root, crop_dir, delay=delay, every=every), progress=False, fallback=False)
    assert codec.numeric_mode.endswith(codec.bundle.adaptation.tag)
    streams = []
    for run in range(2):
        report = codec.encode(image, tmp_path / f"{run}.pxl")
        streams.append((tmp_path / f"{run}.pxl").read_bytes())
        decoded, _ = codec.decode(tmp_path / f"{run}.pxl")
        assert np.array_equal(decoded, np.asarray(image))
    assert streams[0] == streams[1]
    plain = open_codec(adaptive_bundle(root, crop_dir), progress=False, fallback=False)
    plain.encode(image, tmp_path / "plain.pxl")
    assert unpack((tmp_path / "plain.pxl").read_bytes())[1] != unpack(streams[0])[1]  # payloads, not just headers
    assert adapted_bpsp(codec.model, np.asarray(image), codec.bundle.adaptation) == pytest.approx(
        report.model_bpsp, abs=0.02)


def test_delayed_weights_arrive_one_block_late(context_bundles):
    from trainer.codec.adapt import OnlineAdapter
    from trainer.config import Adaptation
    from trainer.models.context import ContextModel

    model = ContextModel.from_pretrained(context_bundles["none"])
    n = len(model.config.offsets) * model.config.channels
    rng = torch.Generator().manual_seed(0)
    blocks = [(torch.rand(40, n, generator=rng) * 2 - 1, torch.randint(0, 256, (40, 3), generator=rng, dtype=torch.uint8))
              for _ in range(2)]
    original = {k: v.clone() for k, v in model.state_dict().items()}
    with OnlineAdapter(model, Adaptation(40, 1e-2, 1, delay=1)) as adapter:
        adapter.block_done(*blocks[0])
        assert all(torch.equal(v, original[k]) for k, v in adapter.model.state_dict().items())  # still training
        adapter.block_done(*blocks[1])
        moved = adapter.model.state_dict()
    last = 2 * (model.config.layers - 1)
    assert not torch.equal(moved["trunk.0.weight"], original["trunk.0.weight"])  # every layer trains
    assert not torch.equal(moved[f"trunk.{last}.weight"], original[f"trunk.{last}.weight"])
    assert not torch.equal(moved["heads.0.0.weight"], original["heads.0.0.weight"])
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())  # the bundle's model untouched


def test_adaptive_stream_is_the_same_with_one_or_two_threads(context_bundles, photos, tmp_path, crop_dir):
    from trainer.codec.registry import open_codec

    bundle = adaptive_bundle(context_bundles["none"].parent, crop_dir)
    image = photo_crop(photos, 20, 26)
    threads = torch.get_num_threads()
    streams = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            open_codec(bundle, progress=False).encode(image, tmp_path / "t.pxl")
            streams.append((tmp_path / "t.pxl").read_bytes())
    finally:
        torch.set_num_threads(threads)
    assert streams[0] == streams[1]


def test_adaptation_settings_are_checked(context_bundles, tmp_path):
    import json as json_

    from trainer.codec.bundle import BundleError, open_bundle, write_manifest
    from trainer.export import export_bundle
    from trainer.config import Adaptation

    for bad in ((0, 1e-4, 1), (64, 0.0, 1), (64, 1e-4, 0), (64, 1e-4, 1, -1), (64, 1e-4, 1, 2),
                (64, 1e-4, 1, 1, 0), (64, 1e-4, 1, 1, 65)):
        with pytest.raises(ValueError, match="adaptation"):
            Adaptation(*bad)
    with pytest.raises(BundleError, match="float32 or integer context bundles"):
        export_bundle(context_bundles["none"].parent / "run" / "final", tmp_path / "q", quantize="int8",
                      adaptation=Adaptation())
    copy = tmp_path / "copy"
    shutil.copytree(context_bundles["none"], copy)
    (copy / "codec.json").write_text(json_.dumps({"format_version": 3, "precision": 16, "adaptation": {"block": -1}}))
    write_manifest(copy)
    with pytest.raises(BundleError, match="adaptation is invalid"):
        open_bundle(copy)


def test_fuzzed_streams_always_fail_with_one_clear_error_and_write_nothing(context_bundles, photos, tmp_path):
    """Truncations, bit flips, random or half payloads behind valid CRCs, absurd sizes: every one is
    a FormatError, CodecError or StreamError (one line at the CLI), never a traceback or an image."""
    import dataclasses
    import zlib

    from trainer.codec.stream import CodecError
    from trainer.codec.registry import open_codec
    from trainer.codec.container import FormatError, pack, unpack
    from trainer.codec.entropy import StreamError

    codec = open_codec(context_bundles["none"], progress=False)
    codec.encode(photo_crop(photos, 12, 14), tmp_path / "ok.pxl")
    data = (tmp_path / "ok.pxl").read_bytes()
    header, payload = unpack(data)
    rng = np.random.default_rng(0)
    cases = [data[:n] for n in (1, 4, 20, 40, len(data) - len(payload), len(data) - 1)]
    for position in rng.integers(0, len(data), 12):
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        cases.append(bytes(flipped))
    random_payload = rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes()
    cases += [pack(header, random_payload), pack(header, payload[:len(payload) // 2 // 4 * 4]),
              pack(header, b""),
              pack(dataclasses.replace(header, width=1 << 20, height=1 << 20), payload),
              pack(dataclasses.replace(header, width=13), payload),
              pack(dataclasses.replace(header, pixel_crc=zlib.crc32(b"x")), payload)]
    for i, bad in enumerate(cases):
        (tmp_path / "bad.pxl").write_bytes(bad)
        with pytest.raises((FormatError, CodecError, StreamError)):
            codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
        assert not (tmp_path / "bad.png").exists(), i


def test_overhead_is_measured_against_the_integer_tables_so_it_is_never_negative(context_bundles, tmp_path):
    """A flat image: the float model gives ~0 bits per value, but every coded frequency is at most
    2**16 - 255, so the file cannot go below the tables' ideal code length (issue 13: it showed -7 %)."""
    from trainer.codec.registry import open_codec

    flat = Image.fromarray(np.full((40, 48, 3), 117, dtype=np.uint8))
    for bundle in context_bundles.values():
        # the model's own stream (the codec as shipped would keep the smaller lossless WebP here)
        report = open_codec(bundle, progress=False, fallback=False).encode(flat, tmp_path / "flat.pxl", bits_map=True)
        assert report.overhead >= 0
        assert report.bits.sum() == pytest.approx(report.model_bpsp * report.subpixels, rel=1e-6)


def test_distillation_from_a_context_teacher_pulls_the_student_to_its_distributions(context_bundles, tmp_path, crop_dir):
    """teacher=FOLDER: the KL term is 0 for a student equal to its teacher, a kd_ratio=1 run moves a
    fresh student's distributions towards the teacher's, and a teacher of another window is refused."""
    from trainer.images.files import image_files
    from trainer.train.context import distillation_kl, load_images, val_windows

    teacher_dir = context_bundles["none"].parent / "run" / "final"
    teacher = ContextModel.from_pretrained(teacher_dir)
    contexts, targets = val_windows(load_images(image_files(crop_dir)[:2], 3), teacher, 1, 24)
    assert distillation_kl(teacher, teacher, contexts, targets, 1.0).item() == pytest.approx(0.0, abs=1e-5)
    fresh = ContextModel(teacher.config)
    before = distillation_kl(teacher, fresh, contexts, targets, 1.0).item()
    metrics = train_context(tiny_recipe(tmp_path, crop_dir, f"teacher={teacher_dir}", "kd_ratio=1.0",
                                        "max_steps=20", "eval_every=20", "save_every=20", "lr=1e-2"))
    assert metrics["teacher"]["path"] == str(teacher_dir) and metrics["teacher"]["val_bpsp"] > 0
    student = ContextModel.from_pretrained(tmp_path / "run" / "final")
    assert distillation_kl(teacher, student, contexts, targets, 1.0).item() < 0.8 * before
    with pytest.raises(RecipeError, match="window"):
        train_context(tiny_recipe(tmp_path / "other", crop_dir, f"teacher={teacher_dir}", "model.rows_above=2",
                                  "max_steps=2"))
    with pytest.raises(RecipeError, match="not a context model"):
        train_context(tiny_recipe(tmp_path / "none", crop_dir, f"teacher={tmp_path / 'missing'}", "max_steps=2"))

"""The codec end to end: real tiny trained model, real photo crops, real range coding, real files."""

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.codec.bundle import BundleError, open_bundle
from trainer.codec.patch import MIN_LANES, PatchCodec
from trainer.codec.stream import CodecError
from trainer.codec.container import FormatError, pack, unpack
from trainer.codec.entropy import quantize

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def codec(bundle_dir):
    return PatchCodec(bundle_dir, progress=False, fallback=False)  # the LM path itself (the tiny LM loses to WebP)


@pytest.fixture(scope="session")
def photo(photos):
    return np.asarray(Image.open(photos[3]).convert("RGBA"))


def crop(photo, height, width, mode="RGB"):
    y, x = photo.shape[0] // 3, photo.shape[1] // 3
    image = Image.fromarray(photo[y:y + height, x:x + width], "RGBA")
    return image.convert(mode) if mode != "RGBA" else image


@pytest.mark.parametrize("height,width,mode", [
    (1, 1, "RGB"), (1, 37, "RGB"), (29, 1, "RGB"), (17, 5, "RGB"), (20, 13, "RGB"), (16, 24, "RGB"),
    (11, 9, "L"), (10, 12, "RGBA"), (9, 7, "LA")])
def test_round_trip_is_bit_exact(codec, photo, tmp_path, height, width, mode):
    image = crop(photo, height, width, mode)
    report = codec.encode(image, tmp_path / "x.pxl")
    decoded, back = codec.decode(tmp_path / "x.pxl", tmp_path / "x.png")
    original = np.asarray(image).reshape(height, width, -1)
    assert np.array_equal(decoded, original)
    reread = Image.open(tmp_path / "x.png")
    assert reread.mode == mode and np.array_equal(np.asarray(reread).reshape(decoded.shape), original)
    size = (tmp_path / "x.pxl").stat().st_size
    assert report.file_bytes == back.file_bytes == size
    assert report.bpsp == pytest.approx(8 * size / original.size)


def test_overhead_on_a_real_photo_is_under_half_a_percent(codec, photo, tmp_path):
    report = codec.encode(crop(photo, 96, 128), tmp_path / "p.pxl")
    assert report.model_bpsp < 7.9  # the model has learnt something, so the tables are not flat
    assert 0 <= report.overhead < 0.005, report.summary("encode")


def test_same_bytes_with_one_or_two_threads_and_any_encoder_batch(bundle_dir, photo, tmp_path):
    image = crop(photo, 24, 40)
    streams = []
    for threads, batch in ((1, 256), (2, 256), (2, 3), (1, 17)):
        PatchCodec(bundle_dir, batch_size=batch, threads=threads, progress=False, fallback=False).encode(image, tmp_path / "s.pxl")
        streams.append((tmp_path / "s.pxl").read_bytes())
    assert all(s == streams[0] for s in streams)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_decode_is_bit_exact_with_other_batch_sizes(codec, bundle_dir, photo, tmp_path, batch_size):
    image = crop(photo, 24, 40)  # 3 x 5 patches of 8x8
    codec.encode(image, tmp_path / "b.pxl")
    other = PatchCodec(bundle_dir, batch_size=batch_size, progress=False)
    decoded, _ = other.decode(tmp_path / "b.pxl")
    assert np.array_equal(decoded, np.asarray(image))


def test_model_rows_do_not_depend_on_batch_from_min_lanes(codec):
    """What bit-exactness rests on: from MIN_LANES rows up, a row's step output is the same in any batch."""
    rng = np.random.default_rng(0)
    prefix = torch.from_numpy(rng.choice(codec.model.vocab.ids, (3 * MIN_LANES, 40)))
    values = torch.from_numpy(rng.integers(0, 256, (3 * MIN_LANES, 6)))

    def run(rows, threads):
        torch.set_num_threads(threads)
        log_probs, cache = codec.model.prefill(prefix[rows], 6)
        for k in range(6):
            log_probs, cache = codec.model.step(values[rows, k], cache)
        return log_probs

    full = run(torch.arange(3 * MIN_LANES), 2)
    for threads in (1, 2):
        for rows in (torch.arange(MIN_LANES), torch.arange(MIN_LANES + 1), torch.randperm(3 * MIN_LANES)[:20]):
            assert torch.equal(run(rows, threads), full[rows])


def test_quantized_frequencies_are_positive_and_exact():
    """Every table sums exactly to 2**precision, and a row's table is exactly the same whatever batch it
    is quantized in (alone, in another order, among other rows, with 1 or 2 threads): the encoder and
    the decoder make the tables of one symbol in different batches, so anything less breaks decoding."""
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(500, 256) * torch.linspace(0.1, 30, 500)[:, None], -1)
    others = torch.log_softmax(torch.randn(300, 256) * 40, -1)  # much sharper rows to share a batch with
    order = torch.randperm(500)
    for precision in (12, 16, 24):
        torch.set_num_threads(2)  # conftest restores the thread count after the test
        freqs = quantize(log_probs, precision)
        assert freqs.min() >= 1 and (freqs.sum(1) == 1 << precision).all()
        assert np.array_equal(quantize(log_probs[order], precision), freqs[order.numpy()])
        assert np.array_equal(quantize(torch.cat([others, log_probs]), precision)[len(others):], freqs)
        for i in (0, 1, 137, 499):
            assert np.array_equal(quantize(log_probs[i:i + 1], precision), freqs[i:i + 1])
        torch.set_num_threads(1)
        assert np.array_equal(quantize(log_probs, precision), freqs)


@pytest.fixture
def stream(codec, photo, tmp_path):
    image = crop(photo, 16, 16)
    codec.encode(image, tmp_path / "ok.pxl")
    return (tmp_path / "ok.pxl").read_bytes(), np.asarray(image)


def header_length(data: bytes) -> int:
    header, payload = unpack(data)
    return len(data) - len(payload)


def test_every_corruption_is_a_clear_error(codec, stream, tmp_path):
    data, _ = stream
    n_header = header_length(data)
    cases = {"empty": b"", "random": np.random.default_rng(1).bytes(len(data)), "magic only": data[:4],
             "png": (REPO / "tests" / "conftest.py").read_bytes()}
    for cut in (3, 10, 25, n_header - 1, n_header + 5, len(data) - 1):
        cases[f"truncated at {cut}"] = data[:cut]
    for pos in (5, 20, 22, 30, n_header - 6, n_header - 1, n_header + 2, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[pos] ^= 0x41
        cases[f"flip {pos}"] = bytes(flipped)
    cases["trailing bytes"] = data + b"\0\0\0\0"
    for name, bad in cases.items():
        (tmp_path / "bad.pxl").write_bytes(bad)
        with pytest.raises((FormatError, CodecError)) as err:
            codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
        assert "\n" not in str(err.value), name
        assert not (tmp_path / "bad.png").exists(), name


def test_wrong_bundle_numeric_mode_and_pixel_crc_are_refused(codec, bundle_dir, stream, tmp_path):
    data, _ = stream
    other = tmp_path / "other"
    shutil.copytree(bundle_dir, other)
    os.remove(other / "manifest.json")
    (other / "codec.json").write_text('{"format_version": 1, "precision": 15}')
    from trainer.codec.bundle import write_manifest
    write_manifest(other)
    (tmp_path / "s.pxl").write_bytes(data)
    with pytest.raises(CodecError, match="encoded with bundle"):
        PatchCodec(other, progress=False).decode(tmp_path / "s.pxl")

    header, payload = unpack(data)
    (tmp_path / "mode.pxl").write_bytes(pack(replace(header, numeric_mode="fp16-cuda"), payload))
    with pytest.raises(CodecError, match="numeric mode"):
        codec.decode(tmp_path / "mode.pxl")
    # A decoder whose arithmetic drifted: simulated by a pixel CRC that cannot match.
    (tmp_path / "crc.pxl").write_bytes(pack(replace(header, pixel_crc=header.pixel_crc ^ 1), payload))
    with pytest.raises(CodecError, match="CRC"):
        codec.decode(tmp_path / "crc.pxl", tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()


def test_tampered_or_incomplete_bundles_are_refused(bundle_dir, tmp_path):
    for damage in ("change", "remove", "add"):
        copy = tmp_path / damage
        shutil.copytree(bundle_dir, copy)
        if damage == "change":
            with open(copy / "pixel_head.safetensors", "r+b") as f:
                f.seek(-3, 2)
                f.write(b"xyz")
        elif damage == "remove":
            os.remove(copy / "prompt.json")
        else:
            (copy / "extra.bin").write_bytes(b"1")
        with pytest.raises(BundleError):
            open_bundle(copy)
    with pytest.raises(BundleError, match="not a codec bundle"):
        open_bundle(tmp_path)


def test_cli_encodes_a_folder_and_decodes_without_naming_the_bundle(bundle_dir, photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    crop(photo, 9, 17).save(folder / "a.png")
    crop(photo, 8, 8, "L").save(folder / "b.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXLM_BUNDLES": str(bundle_dir.parent)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a)], cwd=REPO, env=env,
                                    capture_output=True, text=True)
    enc = run("encode", folder, tmp_path / "out", "--bundle", bundle_dir, "--threads", "1")
    assert enc.returncode == 0, enc.stderr
    assert len(enc.stdout.strip().splitlines()) == 2 and "subpixels/s" in enc.stdout and "overhead" in enc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pxl", "b.pxl"]
    dec = run("decode", tmp_path / "out" / "a.pxl", tmp_path / "a.png", "--quiet")
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(folder / "a.png")))
    (tmp_path / "junk.pxl").write_bytes(b"PXLM\x01junk")
    bad = run("decode", tmp_path / "junk.pxl", tmp_path / "j.png")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "pixlm: error:" in bad.stderr


def test_cli_file_habits_no_clobber_mirrored_folders_clashes_keep_going(photo, tmp_path):
    """Issue 13: outputs checked before any work, never replaced without -f, subfolders mirrored,
    name clashes refused, folders decoded, --keep-going past a bad file with exit code 2."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    crop(photo, 9, 11).save(folder / "a.png")
    crop(photo, 7, 6).save(folder / "sub" / "c.png")
    bundle_dir = REPO / "checkpoints" / "pixlm-online-fast"  # the habits are the CLI's, not a codec's: the quickest
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a), "--quiet"], cwd=REPO,
                                    env=env, capture_output=True, text=True)
    enc = run("encode", folder, tmp_path / "out", "--bundle", bundle_dir)
    assert enc.returncode == 0, enc.stderr
    assert (tmp_path / "out" / "sub" / "c.pxl").is_file()
    before = (tmp_path / "out" / "a.pxl").read_bytes()
    again = run("encode", folder, tmp_path / "out", "--bundle", bundle_dir)
    assert again.returncode == 2 and "exists; use -f/--force" in again.stderr and again.stdout == ""
    assert run("encode", folder, tmp_path / "out", "--bundle", bundle_dir, "-f").returncode == 0
    assert (tmp_path / "out" / "a.pxl").read_bytes() == before
    # A file into an existing folder keeps its name; the input is never its own output.
    (tmp_path / "streams").mkdir()
    assert run("encode", folder / "a.png", tmp_path / "streams", "--bundle", bundle_dir).returncode == 0
    assert (tmp_path / "streams" / "a.pxl").is_file()
    same = run("encode", folder / "a.png", folder / "a.png", "--bundle", bundle_dir, "-f")
    assert same.returncode == 2 and "replace the input" in same.stderr
    # Two inputs, one output name.
    crop(photo, 5, 5).save(folder / "a.bmp")
    clash = run("encode", folder, tmp_path / "out2", "--bundle", bundle_dir)
    assert clash.returncode == 2 and "would both be written" in clash.stderr and not (tmp_path / "out2").exists()
    (folder / "a.bmp").unlink()
    # Decode a folder; wrong suffix refused; a bad stream among good ones with --keep-going.
    assert run("decode", tmp_path / "out" / "a.pxl", tmp_path / "a.jpg").returncode == 2
    (tmp_path / "out" / "bad.pxl").write_bytes(b"PXLM\x01junk")
    stop = run("decode", tmp_path / "out", tmp_path / "back")
    assert stop.returncode == 2 and stop.stderr.count("\n") == 1
    going = run("decode", tmp_path / "out", tmp_path / "back2", "--keep-going")
    assert going.returncode == 2 and "1 of 3 files failed" in going.stderr
    for name in ("a.png", "sub/c.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "back2" / name)), np.asarray(Image.open(folder / name)))
    for bad_value in (("--threads", "0"), ("--batch-size", "-1")):
        refused = run("decode", tmp_path / "out" / "a.pxl", tmp_path / "z.png", *bad_value)
        assert refused.returncode == 2 and "must be at least 1" in refused.stderr


def test_cli_jobs_code_files_in_parallel_processes_with_the_same_bytes(photo, tmp_path):
    """--jobs N: a folder's files in N processes (the default bundle), each stream byte for byte
    what one process writes; a bad stream stops the run, or with --keep-going only itself."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (height, width) in enumerate(((12, 20), (9, 14), (16, 8))):
        crop(photo, height, width).save(folder / f"{i}.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a), "--quiet"], cwd=REPO,
                                    env=env, capture_output=True, text=True)
    one = run("encode", folder, tmp_path / "one")
    two = run("encode", folder, tmp_path / "two", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert two.stdout.count("\n") == 3 and "subpixels/s" in two.stdout
    for i in range(3):
        assert (tmp_path / "one" / f"{i}.pxl").read_bytes() == (tmp_path / "two" / f"{i}.pxl").read_bytes()
    (tmp_path / "two" / "bad.pxl").write_bytes(b"PXLM\x01junk")
    going = run("decode", tmp_path / "two", tmp_path / "back", "-j", "2", "--keep-going")
    assert going.returncode == 2 and "1 of 4 files failed" in going.stderr
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "back" / f"{i}.png")),
                              np.asarray(Image.open(folder / f"{i}.png")))
    stop = run("decode", tmp_path / "two", tmp_path / "back2", "-j", "2")
    assert stop.returncode == 2 and "bad.pxl" in stop.stderr and "Traceback" not in stop.stderr


def test_cli_reads_stdin_and_writes_stdout(photo, tmp_path):
    """`-` as input or output: pixlm encode - - < a.png > a.pxl; pixlm decode - - < a.pxl > back.png."""
    import io

    crop(photo, 6, 9).save(tmp_path / "a.png")
    bundle_dir = REPO / "checkpoints" / "pixlm-online-fast"  # the CLI's habits, on the quickest codec
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda data, *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a), "--quiet"], cwd=REPO,
                                          env=env, capture_output=True, input=data)
    enc = run((tmp_path / "a.png").read_bytes(), "encode", "-", "-", "--bundle", bundle_dir)
    assert enc.returncode == 0 and enc.stdout.startswith(b"PXLM") and b"bpsp" in enc.stderr, enc.stderr
    dec = run(enc.stdout, "decode", "-", "-")
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(dec.stdout))), np.asarray(Image.open(tmp_path / "a.png")))
    bad = run(b"PXLM\x01junk", "decode", "-", tmp_path / "x.png")
    assert bad.returncode == 2 and bad.stdout == b"" and not (tmp_path / "x.png").exists()


def test_cli_output_defaults_beside_the_input_or_with_o(photo, tmp_path):
    crop(photo, 5, 7).save(tmp_path / "a.png")
    bundle_dir = REPO / "checkpoints" / "pixlm-online-fast"  # the CLI's habits, on the quickest codec
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, a), "--quiet"], cwd=REPO,
                                    env=env, capture_output=True, text=True)
    assert run("encode", tmp_path / "a.png", "--bundle", bundle_dir).returncode == 0
    assert (tmp_path / "a.pxl").is_file()  # zstd's habit: the input's name, the output's suffix, beside it
    assert run("decode", tmp_path / "a.pxl", "-o", tmp_path / "b.png").returncode == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.asarray(Image.open(tmp_path / "a.png")))
    both = run("decode", tmp_path / "a.pxl", tmp_path / "c.png", "-o", tmp_path / "d.png")
    assert both.returncode == 2 and "name the output once" in both.stderr

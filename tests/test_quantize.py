"""Quantization and export: int8 bundles through the real codec, model cards, tampering, bitsandbytes on CPU."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from trainer.codec.bundle import BundleError, open_bundle, write_manifest
from trainer.export import export_bundle
from trainer.codec.patch import PatchCodec
from trainer.models.pixel_lm import PixelLM, build_pixel_lm
from trainer.images.files import image_files
from trainer.models.quantize import QuantizationError, dequantize_state, file_bytes, load_bnb, quantize_tensor, validation_bpsp



@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, teacher_dir, crop_dir) -> Path:
    """The tiny teacher as an int8 bundle; its model card bpsp measured at export on the crops."""
    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    return export_bundle(teacher_dir, out, precision=16, quantize="int8", images=crop_dir, val_patches=4).path


def test_int8_weights_are_rowwise_symmetric_and_within_half_a_step():
    weight = torch.randn(48, 40) * torch.linspace(0.01, 3, 48)[:, None]
    weight[5] = 0
    q, scale = quantize_tensor(weight)
    assert q.dtype == torch.int8 and scale.shape == (48,) and q.abs().max() == 127
    back = q.float() * scale[:, None]
    assert ((back - weight).abs() <= scale[:, None] / 2 + 1e-7).all()
    assert torch.equal(back[5], torch.zeros(40))


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_bundles_code_a_real_photo_crop_bit_exactly(kind, bundle_dir, int8_bundle, photos, tmp_path):
    folder = bundle_dir if kind == "fp32" else int8_bundle
    array = np.asarray(Image.open(photos[3]).convert("RGB"))
    image = Image.fromarray(array[100:104, 200:216])  # 2 edge patches of 4x8: 96 coding steps
    threads = torch.get_num_threads()
    report = PatchCodec(folder, threads=1, progress=False).encode(image, tmp_path / "c.pxl")  # output is thread-invariant
    assert report.model_bpsp < 7.9  # a trained model, not flat tables
    decoder = PatchCodec(folder, batch_size=1, threads=1, progress=False)  # a fresh load, its own dequantization
    decoded, _ = decoder.decode(tmp_path / "c.pxl")
    torch.set_num_threads(threads)
    assert np.array_equal(decoded, np.asarray(image))
    assert open_bundle(folder).quantization == ("none" if kind == "fp32" else "int8")
    assert all(p.dtype == torch.float32 for p in decoder.model.parameters())


def test_int8_bundle_is_smaller_loads_exactly_and_costs_little(bundle_dir, int8_bundle, teacher_dir, crop_dir):
    assert file_bytes(int8_bundle) < 0.35 * file_bytes(bundle_dir)
    stored = dequantize_state(load_file(int8_bundle / "model.safetensors"))
    model = open_bundle(int8_bundle).load_model()
    assert all(torch.equal(tensor, model.lm.state_dict()[name]) for name, tensor in stored.items())
    assert torch.equal(model.pixel_head.weight, dequantize_state(load_file(int8_bundle / "pixel_head.safetensors"))["weight"])

    codec = json.loads((int8_bundle / "codec.json").read_text())
    assert codec == {"format_version": 2, "precision": 16, "quantization": "int8"}
    card = (int8_bundle / "README.md").read_text()
    parameters = sum(p.numel() for p in PixelLM.from_pretrained(teacher_dir).parameters())
    assert f"| parameters | {parameters:,} |" in card and "measured at export" in card
    int8_bpsp = float(card.split("| validation bpsp (these weights) | ")[1].split(" ")[0])
    fp32_bpsp = float(card.split("| validation bpsp (float32 checkpoint) | ")[1].split(" ")[0])
    assert abs(int8_bpsp - fp32_bpsp) < 0.02, card  # the int8 cost on these patches
    assert int8_bpsp == pytest.approx(validation_bpsp(model, image_files(crop_dir), 4)["bpsp"], abs=1e-3)
    assert "metrics.json" in (bundle_dir / "README.md").read_text()  # fp32 card: the training's val bpsp


def test_tampering_with_any_file_of_either_bundle_is_detected(bundle_dir, int8_bundle, tmp_path):
    for source in (bundle_dir, int8_bundle):
        names = sorted(p.name for p in source.iterdir())
        assert {"README.md", "codec.json", "manifest.json", "model.safetensors", "config.json",
                "pixel_vocab.json", "prompt.json", "tokenizer.json"} <= set(names)
        for name in names:
            copy = tmp_path / f"{source.name}-{name}"
            shutil.copytree(source, copy)
            data = bytearray((copy / name).read_bytes())
            data[len(data) // 2] ^= 0x20
            (copy / name).write_bytes(bytes(data))
            with pytest.raises(BundleError):
                open_bundle(copy)
            os.remove(copy / name)
            with pytest.raises(BundleError):
                open_bundle(copy)
    # A consistent manifest around inconsistent contents is refused too.
    mixed = tmp_path / "mixed"
    shutil.copytree(int8_bundle, mixed)
    (mixed / "codec.json").write_text('{"format_version": 1, "precision": 16}')
    os.remove(mixed / "manifest.json")
    write_manifest(mixed)
    with pytest.raises(BundleError, match="weights are int8"):
        open_bundle(mixed).load_model()
    (mixed / "codec.json").write_text('{"format_version": 1, "precision": 16, "quantization": "int8"}')
    write_manifest(mixed)
    with pytest.raises(BundleError, match="does not fit format"):
        open_bundle(mixed)


def test_export_command_writes_an_int8_bundle(teacher_dir, tmp_path, capsys):
    from trainer.cli import main

    assert main(["export", str(teacher_dir), str(tmp_path / "b"), "--quantize", "int8", "--precision", "14"]) == 0
    assert "weights int8" in capsys.readouterr().out
    bundle = open_bundle(tmp_path / "b")
    assert (bundle.precision, bundle.quantization) == (14, "int8")
    assert "int8 cost was not measured" in (tmp_path / "b" / "README.md").read_text()
    assert main(["export", str(teacher_dir), str(tmp_path / "b"), "--quantize", "int8"]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: only none|int8
        main(["export", str(teacher_dir), str(tmp_path / "c"), "--quantize", "int4"])


def _bitsandbytes_usable() -> bool:
    try:
        import bitsandbytes  # noqa: F401
        return True
    except Exception:
        return False


@pytest.mark.parametrize("mode,tolerance", [("int8", 0.05), ("nf4", 0.5)])
def test_bitsandbytes_loads_and_predicts_or_says_why_not(mode, tolerance, teacher_dir, crop_dir):
    """The tiny teacher's Linear out_features (64, 128) are multiples of 32, so nf4 runs on AVX512-BF16 CPUs too."""
    if not _bitsandbytes_usable():
        with pytest.raises(QuantizationError, match="bitsandbytes is not usable"):
            load_bnb(teacher_dir, mode)
        return
    model = load_bnb(teacher_dir, mode)
    kinds = {type(m).__name__ for m in model.lm.modules()}
    assert ("Linear8bitLt" if mode == "int8" else "Linear4bit") in kinds
    images = image_files(crop_dir)[:2]
    reference = validation_bpsp(PixelLM.from_pretrained(teacher_dir).eval(), images, 2)["bpsp"]
    assert abs(validation_bpsp(model, images, 2)["bpsp"] - reference) < tolerance


def test_nf4_with_odd_layer_sizes_is_refused_where_bitsandbytes_cannot_run_it(tmp_path):
    """bitsandbytes' 4-bit CPU kernel on AVX512-BF16 asserts for out_features not a multiple of 32."""
    from trainer.config import load_recipe

    cfg = load_recipe("quickstart", ["model.tokenizer=bytes", "model.config.hidden_size=48",
                                     "model.config.intermediate_size=100", "model.config.num_hidden_layers=1",
                                     "model.config.num_attention_heads=4", "model.config.num_key_value_heads=4",
                                     "prompt.instruction=px"])
    build_pixel_lm(cfg.model, cfg.prompt, cfg.lora).save_pretrained(tmp_path / "odd")
    cpu_bf16 = "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    if not _bitsandbytes_usable() or (cpu_bf16 and not torch.cuda.is_available()):
        with pytest.raises(QuantizationError, match="bitsandbytes is not usable|multiples of 32"):
            load_bnb(tmp_path / "odd", "nf4")
    else:
        import bitsandbytes as bnb

        loaded = load_bnb(tmp_path / "odd", "nf4")
        assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.modules())
    with pytest.raises(QuantizationError, match="int8 or nf4"):
        load_bnb(tmp_path / "odd", "fp4")

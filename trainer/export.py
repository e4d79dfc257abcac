"""`pixlm export`: a trained checkpoint (train.py's, distill.py's or train_context.py's `final/`)
turned into a codec bundle (trainer.codec.bundle): weights copied or quantized, integer grids
calibrated on training images, a model card, the manifest. It stands above both the codec and
training: the codec never imports it.
"""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from trainer.codec.bundle import CODEC_FILE, MODEL_FILES, QUANTIZATIONS, Bundle, BundleError, open_bundle, write_manifest
from trainer.codec.kinds import (ADAPTIVE_FORMAT_VERSION, CONTEXT, FORMAT_VERSION, INT8_FORMAT_VERSION,
                                 INTEGER_FORMAT_VERSION, LM, ONLINE, ONLINE_FORMAT_VERSION, kind_of)
from trainer.config import Adaptation


def _model_card(checkpoint: Path, quantization: str, precision: int, parameters: int, measured: dict | None,
                images: Path | None, adaptation: Adaptation | None = None) -> str:
    weights = {"int8": "int8, one symmetric float32 scale per row of every 2-D weight; float32 after load",
               "integer": "float32 masters; coded in integer arithmetic: int8 weights (skips int16), 16-bit "
                          "activations, lookup tables (integer.safetensors): streams decode bit-exactly on any machine",
               }.get(quantization, "float32")
    lines = [f"# pixlm codec bundle ({'int8 weights' if quantization == 'int8' else 'integer arithmetic' if quantization == 'integer' else 'float32 weights'})", "",
             f"Made by `pixlm export` from `{checkpoint}`. Lossless image codec: the model's next-subpixel",
             "distribution drives a range coder (see the pixlm README).", "",
             "| | |", "| --- | --- |",
             f"| parameters | {parameters:,} |",
             f"| weights | {weights} |",
             f"| probability precision | {precision} bits |"]
    if adaptation is not None:
        sample = f" (training on 1 pixel in {adaptation.every})" if adaptation.every > 1 else ""
        lines.append(f"| online adaptation | Adam lr {adaptation.lr:g}, {adaptation.steps} step(s) on all weights after every "
                     f"{adaptation.block} coded pixels{sample}, repeated by the decoder (trainer/codec/adapt.py)"
                     + ("; each block's steps run on a second core while the next block is coded, and its "
                        "weights predict from the block after that" if adaptation.delay else "") + " |")
    if measured is not None:
        lines.append(f"| validation bpsp (these weights) | {measured['bpsp']:.4f} |")
        if "fp32_bpsp" in measured:
            lines.append(f"| validation bpsp (float32 checkpoint) | {measured['fp32_bpsp']:.4f} |")
        source = (f"measured at export with PixelLM.forward (cross-entropy, bits / subpixels) on "
                  f"{measured['patches']} random patches ({measured['subpixels']:,} subpixels) of the "
                  f"{measured['images']} images in `{images}`")
    else:
        metrics = checkpoint / "metrics.json"
        value = json.loads(metrics.read_text()).get("val_bpsp") if metrics.is_file() else None
        info = json.loads(metrics.read_text()) if metrics.is_file() else {}
        if info.get("trained_on"):
            lines.append(f"| trained on | {info['trained_on']} |")
        if value is not None:
            lines.append(f"| validation bpsp (float32 checkpoint) | {value:.4f} |")
            source = "taken from the checkpoint's metrics.json (training's held-out images, float32 weights)"
            if quantization == "int8":
                source += "; the int8 cost was not measured (export with --images DIR to measure it)"
        else:
            source = "not measured (no metrics.json; export with --images DIR)"
    lines += ["", f"Validation bpsp: {source}. It is the model's cross-entropy, not a file size.", "",
              "Use: `pixlm encode IMAGE OUT.pxl --bundle THIS_FOLDER`, `pixlm decode OUT.pxl IMAGE.png --bundle THIS_FOLDER`.",
              ""]
    return "\n".join(lines)


def export_bundle(checkpoint: Path, out: Path, precision: int = 16, quantize: str = "none",
                  images: Path | None = None, val_patches: int = 16,
                  adaptation: Adaptation | None = None, calibrate: list[Path] | None = None) -> Bundle:
    """Bundle a trained checkpoint folder (train.py's or distill.py's `final/`) for the codec.

    quantize="int8" stores every 2-D weight as int8 + per-row scales (trainer.quantize). With `images`
    (a folder), the validation bpsp in the model card is measured at export on `val_patches` random
    patches per image, for the exported weights (and the float32 checkpoint, to show the int8 cost);
    without, it is the checkpoint's metrics.json val_bpsp.

    quantize="integer" (context models): the integer model of trainer.models.integer_context, its
    activation grids calibrated on crops of the training images `calibrate` (files or folders).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if quantize not in QUANTIZATIONS:
        raise BundleError(f"quantize={quantize}: must be one of {', '.join(QUANTIZATIONS)}")
    if not 8 <= precision <= 24:
        raise BundleError(f"precision {precision}: must be 8..24 bits (every one of 256 symbols needs a frequency)")
    kind = kind_of(checkpoint)
    if not (checkpoint / "model.safetensors").is_file() or (kind is LM and not (checkpoint / "pixel_vocab.json").is_file()):
        raise BundleError(f"{checkpoint} is not a trained pixlm checkpoint (train.py, distill.py and "
                          "train_context.py write one to OUTPUT_DIR/final)")
    if adaptation is not None and (kind is not CONTEXT or quantize == "int8"):
        raise BundleError("online adaptation is for float32 or integer context bundles (it trains the weights while coding)")
    if (quantize == "integer") != bool(calibrate) or (quantize == "integer" and kind is not CONTEXT):
        raise BundleError("--quantize integer is for context models and needs --calibrate DIR (training images)")
    if kind is CONTEXT and images is not None:
        raise BundleError("--images measures LM bundles only; a context model's card takes its val_bpsp from metrics.json")
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty")
    calibration = []
    for entry in map(Path, calibrate or []):
        from trainer.images.files import image_files

        found = image_files(entry) if entry.is_dir() else [entry] if entry.is_file() else []
        if not found:
            raise BundleError(f"--calibrate {entry}: not an image file or a folder of images")
        calibration += found
    image_paths = None
    if images is not None:
        from trainer.images.files import image_files

        image_paths = image_files(Path(images)) if Path(images).is_dir() else []
        if not image_paths:
            raise BundleError(f"--images {images}: not a folder of images")
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    from trainer.models.context import ContextModel
    from trainer.models.pixel_lm import PixelLM, count_parameters
    from trainer.models.quantize import load_int8, validation_bpsp, write_int8_weights

    model = (ContextModel if kind is CONTEXT else PixelLM).from_pretrained(checkpoint).eval()
    parameters = count_parameters(model)["parameters"]
    measured = validation_bpsp(model, image_paths, val_patches) if image_paths else None
    codec = {"format_version": FORMAT_VERSION, "precision": precision}
    if quantize == "int8":
        write_int8_weights(checkpoint, out)
        codec = {"format_version": INT8_FORMAT_VERSION, "precision": precision, "quantization": "int8"}
        if image_paths:
            measured = {**validation_bpsp(load_int8(out), image_paths, val_patches), "fp32_bpsp": measured["bpsp"]}
    if adaptation is not None:
        codec = {"format_version": ADAPTIVE_FORMAT_VERSION, "precision": precision, "adaptation": asdict(adaptation)}
    if quantize == "integer":
        _write_integer(model, calibration, out)
        codec = {"format_version": INTEGER_FORMAT_VERSION, "precision": precision, "quantization": "integer"}
        if adaptation is not None:
            codec["adaptation"] = asdict(adaptation)
    del model
    (out / CODEC_FILE).write_text(json.dumps(codec, indent=1))
    (out / "README.md").write_text(_model_card(checkpoint, quantize, precision, parameters, measured, images, adaptation))
    write_manifest(out)
    return open_bundle(out)


def _write_integer(model, paths: list[Path], out: Path) -> None:
    """integer.safetensors: grids calibrated on 4 crops of 64x64 of each image (at most 16)."""
    from trainer.models.integer_context import IntegerContextModel
    from trainer.train.context import load_images, val_windows

    IntegerContextModel.write_fixed(model, *val_windows(load_images(paths[:16], model.config.channels), model, 4, 64), out)


def export_online(out: Path, preset: str = "fast", overrides: dict | None = None, net=None,
                  trained: str = "") -> Bundle:
    """An online-engine bundle: codec.json with the preset's settings (and any `overrides`), the
    engine's tables, a model card and the manifest. With `net` (a trained
    trainer.engine.models.network.Net; `trained` says how, for the card) the bundle runs it:
    `network` is set to 1 and its integer weights are stored with the tables."""
    from trainer.engine.settings import PRESETS, EngineSettings
    from trainer.engine.tables import save_tables

    out = Path(out)
    if preset not in PRESETS:
        raise BundleError(f"preset {preset!r}: one of {', '.join(PRESETS)}")
    try:
        settings = EngineSettings.from_dict({**PRESETS[preset].to_dict(), **(overrides or {}),
                                             **({"network": 1} if net is not None else {})})
    except (TypeError, ValueError) as err:
        raise BundleError(str(err)) from None
    if settings.network and net is None:
        raise BundleError("engine setting network=1 needs a trained network (pixlm poc trains one)")
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    save_tables(out, net)
    codec = {"format_version": ONLINE_FORMAT_VERSION, "kind": ONLINE.name, "precision": 16, "engine": settings.to_dict()}
    (out / CODEC_FILE).write_text(json.dumps(codec, indent=1))
    stage = {0: "normalized LMS (integer)", 1: "recursive least squares (float64, fixed operation order)",
             2: "normalized LMS (integer) or recursive least squares (float64), the encoder's choice per image"}[settings.ols]
    if settings.ols and settings.ols_wide:
        stage += " over 26 inputs (the sub-predictions, farther neighbours, more inter-channel predictions)"
    if settings.ols and settings.mix:
        stage += ", with an integer LMS beside it"
    fallbacks = (["lossless WebP"] if settings.fallback_webp else []) + \
        ([f"lossless JPEG-XL (effort {settings.fallback_jxl})"] if settings.fallback_jxl else [])
    changed = {k: v for k, v in settings.to_dict().items() if PRESETS[preset].to_dict()[k] != v}
    (out / "README.md").write_text("\n".join([
        f"# pixlm online bundle (preset `{preset}`)", "",
        ("Made by `pixlm export-online " + preset + " OUT" + "".join(f" --set {k}={v}" for k, v in changed.items()) + "`"
         if net is None else f"The `{preset}` preset with {json.dumps(changed)} and a trained network")
        + (". Lossless image codec without a network: " if net is None else ". Lossless image codec: ")
        + "16 classical predictors blended by their recent local "
        f"errors, a learned correction by {stage}, a discretized logistic whose scale adapts to each image, "
        + ("each value coded as binary decisions whose probabilities mix the logistic with adaptive context "
           "models (the residuals of the pixel's earlier channels and its neighbours; trainer/engine/mixing.py), "
           if settings.mix else "")
        + "and a range coder, all compiled (trainer/engine). "
        + ("Where the encoder finds it pays (chroma-subsampled sources repeat every 2 pixels), the least "
           "squares keep one weight set per pixel-position parity. " if settings.ols and settings.ols_parity else "")
        + ("The encoder chooses the order of the first three channels (the one that codes the image's "
           "middle rows smallest). " if settings.channel_order else "")
        + ("An image a JPEG decoder made (every pixel on libjpeg's integer YCbCr-to-RGB lattice) is coded "
           "as its Y, Cb, Cr planes (trainer/engine/colour.py). " if settings.colour else "")
        + ("The mixers also see which values each channel took after the same values of the pixel's earlier "
           "channels (trainer/engine/models/seen.py): sources whose colours lie on a rounded lattice (video "
           "frames, Photo CD) code far smaller. " if settings.seen else "")
        + (f"A small network trained offline predicts each value ({trained}; trainer/engine/models/network.py, "
           "exact integer inference); its prediction is one more input of the least squares. " if net is not None else "")
        + ("Where an image's colours lie on such a lattice (integer planes mapped to RGB by one linear map "
           "and one rounding), the encoder finds the map and codes the planes; the stream carries the map "
           "(trainer/engine/lattice.py). " if settings.lattice else "")
        + "It adapts to every image while coding and stores "
        "nothing but the coded values." + (f" The encoder also tries {' and '.join(fallbacks)} and keeps the "
                                           "smallest stream." if fallbacks else "")
        + (" Where that comes within 3 % of the engine's stream (synthetic content), it also tries lossless "
           "WebP at method 6 and JPEG-XL at effort 10." if settings.fallback_best else ""), "",
        "| setting | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in settings.to_dict().items()], "",
        "Use: `pixlm encode IMAGE OUT.pxl --bundle THIS_FOLDER`, `pixlm decode OUT.pxl IMAGE.png`.", ""]))
    write_manifest(out)
    return open_bundle(out)

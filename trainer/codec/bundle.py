"""Codec bundles: the folder the codec loads with nothing else.

A bundle is a `PixelLM.save_pretrained` folder (config.json, model.safetensors, tokenizer,
pixel_vocab.json, prompt.json, pixel_head.safetensors) plus

- `codec.json`: bundle format version, probability precision (bits of the integer frequencies) and
  weight quantization ("none": float32 weights, format 1; "int8": weight-only int8 with one scale per
  row, dequantized to float32 once at load, format 2 so that older decoders refuse it; "integer":
  context bundles computed in integer arithmetic, grids and tables in integer.safetensors, format 4:
  their streams decode bit-exactly on any machine, trainer.models.integer_context);
- `README.md`: a model card (parameter count, validation bpsp and where that number comes from);
- `manifest.json`: the sha256 of every other file and the bundle id, the sha256 of that list.

The bundle id goes into every stream; a decoder refuses a stream made with another bundle. Loading
checks every file against the manifest: a missing, changed or unlisted file is refused.
"""

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.config import Adaptation
from trainer.paths import resource
from trainer.train.download import sha256_of

FORMAT_VERSION = 1  # float32 weights
INT8_FORMAT_VERSION = 2  # adds codec.json "quantization": "int8"
ADAPTIVE_FORMAT_VERSION = 3  # adds codec.json "adaptation" (context bundles; trainer.adapt): older decoders refuse it
INTEGER_FORMAT_VERSION = 4  # adds codec.json "quantization": "integer" (+ "adaptation" optional)
QUANTIZATIONS = ("none", "int8", "integer")
CODEC_FILE = "codec.json"
MANIFEST_FILE = "manifest.json"
# Files of a PixelLM folder that a bundle carries (the training adapter/ is not needed to decode).
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "pixel_head.safetensors",
               "pixel_vocab.json", "prompt.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "recipe.yaml", "metrics.json")


class BundleError(ValueError):
    """A folder that is not a complete, untampered codec bundle."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    bundle_id: str  # 64 hex digits
    precision: int
    quantization: str = "none"
    kind: str = "lm"  # "lm": a PixelLM (trainer.codec); "context": a ContextModel (trainer.codec.wavefront)
    adaptation: "Adaptation | None" = None  # context bundles: online per-image adaptation while coding

    def load_model(self):
        from trainer.models.context import ContextModel
        from trainer.models.pixel_lm import PixelLM
        from trainer.models.quantize import is_int8_folder, load_int8

        if is_int8_folder(self.path) != (self.quantization == "int8"):
            raise BundleError(f"{self.path}: codec.json says quantization {self.quantization!r} but the weights "
                              f"{'are' if self.quantization == 'none' else 'are not'} int8")
        if self.kind == "context" and self.quantization == "integer":
            from trainer.models.integer_context import IntegerContextModel

            return IntegerContextModel.from_pretrained(self.path)
        if self.kind == "context":
            return ContextModel.from_pretrained(self.path)  # int8 weights are dequantized once at load
        if self.quantization == "int8":
            return load_int8(self.path, attn_implementation="eager")  # float32 after load: same path as below
        # Eager attention: torch's SDPA splits a one-token query over the KV length by thread count,
        # so its results change with the number of threads; the eager softmax(QK^T)V does not.
        return PixelLM.from_pretrained(self.path, attn_implementation="eager").eval()


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_of(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}


def _bundle_id(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def write_manifest(folder: Path) -> str:
    files = _file_hashes(folder)
    bundle_id = _bundle_id(files)
    (folder / MANIFEST_FILE).write_text(json.dumps({"bundle_id": bundle_id, "files": files}, indent=1))
    return bundle_id


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
        trained = "all weights" if adaptation.trunk_layers is None else \
            f"the top {adaptation.trunk_layers} trunk layer(s), heads and skips"
        sample = f" (training on 1 pixel in {adaptation.every})" if adaptation.every > 1 else ""
        lines.append(f"| online adaptation | Adam lr {adaptation.lr:g}, {adaptation.steps} step(s) on {trained} after every "
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
    kind = model_kind(checkpoint)
    if not (checkpoint / "model.safetensors").is_file() or (kind == "lm" and not (checkpoint / "pixel_vocab.json").is_file()):
        raise BundleError(f"{checkpoint} is not a trained pixlm checkpoint (train.py, distill.py and "
                          "train_context.py write one to OUTPUT_DIR/final)")
    if adaptation is not None and (kind != "context" or quantize == "int8"):
        raise BundleError("online adaptation is for float32 or integer context bundles (it trains the weights while coding)")
    if (quantize == "integer") != bool(calibrate) or (quantize == "integer" and kind != "context"):
        raise BundleError("--quantize integer is for context models and needs --calibrate DIR (training images)")
    if kind == "context" and images is not None:
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

    model = (ContextModel if kind == "context" else PixelLM).from_pretrained(checkpoint).eval()
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


def model_kind(folder: Path) -> str:
    """"context" for a ContextModel folder (config.json model_type pixlm-context), else "lm"."""
    from trainer.models.context import MODEL_TYPE

    try:
        model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return "lm"
    return "context" if model_type == MODEL_TYPE else "lm"


def open_bundle(folder: Path) -> Bundle:
    """Verify a bundle folder against its manifest; BundleError says what is wrong."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        raise BundleError(f"{folder}: not a codec bundle (no {MANIFEST_FILE})")
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        listed, claimed = dict(manifest["files"]), manifest["bundle_id"]
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{folder}: {MANIFEST_FILE} is unreadable") from None
    actual = _file_hashes(folder)
    for name in listed:
        if name not in actual:
            raise BundleError(f"{folder}: incomplete bundle, {name} is missing")
        if actual[name] != listed[name]:
            raise BundleError(f"{folder}: {name} does not match its sha256 in the manifest (changed or corrupted)")
    extra = sorted(set(actual) - set(listed))
    if extra:
        raise BundleError(f"{folder}: files not in the manifest: {', '.join(extra)}")
    if _bundle_id(listed) != claimed:
        raise BundleError(f"{folder}: manifest bundle_id does not match its file list")
    codec = json.loads((folder / CODEC_FILE).read_text()) if CODEC_FILE in listed else None
    version = codec and codec.get("format_version")
    versions = (FORMAT_VERSION, INT8_FORMAT_VERSION, ADAPTIVE_FORMAT_VERSION, INTEGER_FORMAT_VERSION)
    if version not in versions:
        raise BundleError(f"{folder}: bundle format {version} is not one of {', '.join(map(str, versions))}; "
                          "a newer pixlm reads it")
    quantization = codec.get("quantization", "none")
    if quantization not in QUANTIZATIONS or (quantization == "int8") != (version == INT8_FORMAT_VERSION) \
            or (quantization == "integer") != (version == INTEGER_FORMAT_VERSION):
        raise BundleError(f"{folder}: codec.json quantization {quantization!r} does not fit format {version}")
    adaptation = None
    if version == ADAPTIVE_FORMAT_VERSION or (version == INTEGER_FORMAT_VERSION and "adaptation" in codec):
        try:
            # v2 bundles predate trunk_layers and delay: every layer trained, nothing ran late
            adaptation = Adaptation(**{"trunk_layers": None, "delay": 0, **codec["adaptation"]})
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{folder}: codec.json adaptation is invalid ({err})") from None
    return Bundle(folder, claimed, int(codec["precision"]), quantization, model_kind(folder), adaptation)


# The bundle the project ships (git-tracked): what `pixlm encode` uses when no --bundle is given.
DEFAULT_BUNDLE = resource("checkpoints") / "pixlm-context-v5"


def default_bundle() -> Bundle:
    if not (DEFAULT_BUNDLE / MANIFEST_FILE).is_file():
        raise BundleError(f"no --bundle given and the shipped bundle {DEFAULT_BUNDLE} is missing "
                          "(it comes with a git checkout of pixlm); pass --bundle DIR")
    return open_bundle(DEFAULT_BUNDLE)


def bundle_search_path() -> list[Path]:
    """Where a decoder looks for a stream's bundle: $PIXLM_BUNDLES (os.pathsep-separated), then checkpoints/."""
    extra = [Path(p) for p in os.environ.get("PIXLM_BUNDLES", "").split(os.pathsep) if p]
    return extra + [resource("checkpoints")]


def find_bundle(bundle_id: bytes) -> Bundle:
    """The bundle (below the search path) whose id starts with the stream's 16 bytes."""
    prefix = bundle_id.hex()
    for root in bundle_search_path():
        for manifest in sorted(root.rglob(MANIFEST_FILE)) if root.is_dir() else []:
            try:
                claimed = json.loads(manifest.read_text()).get("bundle_id", "")
            except ValueError:
                continue
            if claimed.startswith(prefix):
                return open_bundle(manifest.parent)
    raise BundleError(f"no bundle with id {prefix} in {', '.join(map(str, bundle_search_path()))}; "
                      "pass --bundle DIR or add its folder to PIXLM_BUNDLES")

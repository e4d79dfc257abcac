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
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from trainer.config import Adaptation
from trainer.paths import resource
from trainer.checksums import sha256_of
from trainer.errors import PixlmError

FORMAT_VERSION = 1  # float32 weights
INT8_FORMAT_VERSION = 2  # adds codec.json "quantization": "int8"
ADAPTIVE_FORMAT_VERSION = 3  # adds codec.json "adaptation" (context bundles; trainer.adapt): older decoders refuse it
INTEGER_FORMAT_VERSION = 4  # adds codec.json "quantization": "integer" (+ "adaptation" optional)
ONLINE_FORMAT_VERSION = 5  # "kind": "online": no network, the online engine's settings and tables (trainer.engine)
QUANTIZATIONS = ("none", "int8", "integer")
CODEC_FILE = "codec.json"
MANIFEST_FILE = "manifest.json"
# Files of a PixelLM folder that a bundle carries (the training adapter/ is not needed to decode).
# Bundles no longer shipped, and the last release whose checkout decodes their streams (CHANGELOG.md).
RETIRED = {"5947162444b1abad": ("pixlm-context-v1", "0.2.0"), "8d65ad6d188049a5": ("pixlm-context-v2", "0.2.0"),
           "ac0fef9bd38b1c7b": ("pixlm-context-v4", "0.2.0")}
# The modules each bundle kind's codec needs beyond the codec's own (numpy, numba, Pillow,
# imagecodecs): network bundles run torch, and come with `pip install 'pixlm[train]'`.
KIND_MODULES = {"online": (), "context": ("torch", "constriction"), "lm": ("torch", "transformers", "constriction")}
TRAIN_EXTRA = "pip install 'pixlm[train]'"
CONTEXT_MODEL_TYPE = "pixlm-context"  # config.json model_type of a ContextModel (trainer.models.context.MODEL_TYPE)
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "pixel_head.safetensors",
               "pixel_vocab.json", "prompt.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "recipe.yaml", "metrics.json")


class BundleError(PixlmError):
    """A folder that is not a complete, untampered codec bundle."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    bundle_id: str  # 64 hex digits
    precision: int
    quantization: str = "none"
    kind: str = "lm"  # "lm": a PixelLM (codec.patch); "context": a ContextModel (codec.wavefront); "online" (codec.online)
    adaptation: "Adaptation | None" = None  # context bundles: online per-image adaptation while coding
    engine: "EngineSettings | None" = None  # online bundles: the engine's settings

    def require(self) -> None:
        """BundleError in one line where a module this bundle's codec runs is not installed (network
        bundles need torch: the `train` extra)."""
        missing = [name for name in KIND_MODULES.get(self.kind, ()) if not _installed(name)]
        if missing:
            raise BundleError(f"bundle {self.path.name} needs {', '.join(missing)}: {TRAIN_EXTRA}")

    def load_model(self):
        self.require()
        if self.kind == "online":
            from trainer.engine.tables import load_tables

            try:
                return load_tables(self.path)
            except (OSError, ValueError) as err:
                raise BundleError(str(err)) from None
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


def _installed(module: str) -> bool:
    """Whether a module can be imported, found without importing it (torch takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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


def model_kind(folder: Path) -> str:
    """"online" for an online-engine bundle (codec.json kind), "context" for a ContextModel folder
    (config.json model_type pixlm-context), else "lm"."""
    try:
        if json.loads((Path(folder) / CODEC_FILE).read_text()).get("kind") == "online":
            return "online"
    except (OSError, ValueError, AttributeError):
        pass
    try:
        model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return "lm"
    return "context" if model_type == CONTEXT_MODEL_TYPE else "lm"


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
    versions = (FORMAT_VERSION, INT8_FORMAT_VERSION, ADAPTIVE_FORMAT_VERSION, INTEGER_FORMAT_VERSION,
                ONLINE_FORMAT_VERSION)
    if version not in versions:
        raise BundleError(f"{folder}: bundle format {version} is not one of {', '.join(map(str, versions))}; "
                          "a newer pixlm reads it")
    if version == ONLINE_FORMAT_VERSION:
        from trainer.engine.settings import EngineSettings

        if codec.get("kind") != "online" or int(codec.get("precision", 0)) != 16:
            raise BundleError(f"{folder}: a format {version} bundle is kind online with precision 16")
        try:
            engine = EngineSettings.from_dict(codec.get("engine", {}))
        except (TypeError, ValueError) as err:
            raise BundleError(f"{folder}: codec.json engine settings: {err}") from None
        return Bundle(folder, claimed, 16, "none", "online", None, engine)
    quantization = codec.get("quantization", "none")
    if quantization not in QUANTIZATIONS or (quantization == "int8") != (version == INT8_FORMAT_VERSION) \
            or (quantization == "integer") != (version == INTEGER_FORMAT_VERSION):
        raise BundleError(f"{folder}: codec.json quantization {quantization!r} does not fit format {version}")
    adaptation = None
    if version == ADAPTIVE_FORMAT_VERSION or (version == INTEGER_FORMAT_VERSION and "adaptation" in codec):
        try:
            settings = dict(codec["adaptation"])
            if settings.pop("trunk_layers", None) is not None:  # shipped bundles say null: every weight trains
                raise BundleError(f"{folder}: its adaptation trains part of the trunk (trunk_layers), which "
                                  "pixlm 0.2.0 was the last release to do")
            adaptation = Adaptation(**{"delay": 0, **settings})  # a bundle without the key never ran late
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{folder}: codec.json adaptation is invalid ({err})") from None
    return Bundle(folder, claimed, int(codec["precision"]), quantization, model_kind(folder), adaptation)


# The bundle the project ships (git-tracked): what `pixlm encode` uses when no --bundle is given,
# the one to pick for archives (the fewest bits on Kodak and held-out photos: benchmarks/results/).
DEFAULT_BUNDLE = resource("checkpoints") / "pixlm-online-max"


def default_bundle() -> Bundle:
    if not (DEFAULT_BUNDLE / MANIFEST_FILE).is_file():
        raise BundleError(f"no --bundle given and the shipped bundle {DEFAULT_BUNDLE} is missing "
                          "(it comes with a git checkout of pixlm); pass --bundle DIR")
    return open_bundle(DEFAULT_BUNDLE)


def bundle_search_path() -> list[Path]:
    """Where a decoder looks for a stream's bundle: $PIXLM_BUNDLES (os.pathsep-separated), then checkpoints/."""
    extra = [Path(p) for p in os.environ.get("PIXLM_BUNDLES", "").split(os.pathsep) if p]
    return extra + [resource("checkpoints")]


def bundle_folder(bundle_id: bytes) -> Path | None:
    """The folder below the search path whose manifest's id starts with a stream's 16 bytes (read
    from manifests only: nothing is verified or loaded), or None."""
    prefix = bundle_id.hex()
    for root in bundle_search_path():
        for manifest in sorted(root.rglob(MANIFEST_FILE)) if root.is_dir() else []:
            try:
                claimed = json.loads(manifest.read_text()).get("bundle_id", "")
            except ValueError:
                continue
            if claimed.startswith(prefix):
                return manifest.parent
    return None


def find_bundle(bundle_id: bytes) -> Bundle:
    """The bundle (below the search path) whose id starts with the stream's 16 bytes, verified."""
    prefix = bundle_id.hex()
    if prefix[:16] in RETIRED:
        name, release = RETIRED[prefix[:16]]
        raise BundleError(f"this stream was made with {name}, retired; pixlm {release} is the last release "
                          f"that decodes it (git checkout v{release})")
    folder = bundle_folder(bundle_id)
    if folder is None:
        raise BundleError(f"no bundle with id {prefix} in {', '.join(map(str, bundle_search_path()))}; "
                          "pass --bundle DIR or add its folder to PIXLM_BUNDLES")
    return open_bundle(folder)

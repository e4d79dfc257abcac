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

# Format versions, settings, models and codecs of each bundle kind: trainer.codec.kinds (KINDS).
QUANTIZATIONS = ("none", "int8", "integer")
CODEC_FILE = "codec.json"
MANIFEST_FILE = "manifest.json"
# Files of a PixelLM folder that a bundle carries (the training adapter/ is not needed to decode).
# Bundles no longer shipped, and the last release whose checkout decodes their streams (CHANGELOG.md).
RETIRED = {"5947162444b1abad": ("pixlm-context-v1", "0.2.0"), "8d65ad6d188049a5": ("pixlm-context-v2", "0.2.0"),
           "ac0fef9bd38b1c7b": ("pixlm-context-v4", "0.2.0")}
# Network bundles run torch (their kinds' modules), which comes with the `train` extra.
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
    kind: str = "lm"  # a name in trainer.codec.kinds.KINDS: "lm" (codec.patch), "context" (codec.wavefront), "online"
    adaptation: "Adaptation | None" = None  # context bundles: online per-image adaptation while coding
    engine: "EngineSettings | None" = None  # online bundles: the engine's settings
    settings: object = None  # a kind's own settings, where its parser has no field above for them

    def require(self) -> None:
        """BundleError in one line where a module this bundle's codec runs is not installed (network
        bundles need torch: the `train` extra)."""
        from trainer.codec import kinds

        missing = [name for name in kinds.named(self.kind).modules if not _installed(name)]
        if missing:
            raise BundleError(f"bundle {self.path.name} needs {', '.join(missing)}: {TRAIN_EXTRA}")

    def load_model(self):
        from trainer.codec import kinds

        self.require()
        return kinds.named(self.kind).load(self)


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
    """The kind of a bundle or checkpoint folder (the first in trainer.codec.kinds.KINDS that claims it)."""
    from trainer.codec import kinds

    return kinds.kind_of(folder).name


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
    return _open_kind(folder, claimed, json.loads((folder / CODEC_FILE).read_text()) if CODEC_FILE in listed else None)


def _open_kind(folder: Path, bundle_id: str, codec: dict | None) -> Bundle:
    """The verified folder's Bundle, its settings parsed by its kind (trainer.codec.kinds)."""
    from trainer.codec import kinds

    version = codec and codec.get("format_version")
    if version not in kinds.versions():
        raise BundleError(f"{folder}: bundle format {version} is not one of {', '.join(map(str, kinds.versions()))}; "
                          "a newer pixlm reads it")
    kind = kinds.kind_of(folder, codec)
    if version not in kind.versions:
        readers = [k.name for k in kinds.KINDS if version in k.versions]
        raise BundleError(f"{folder}: a format {version} bundle is of kind {' or '.join(readers)}, not {kind.name}")
    return Bundle(folder, bundle_id, kind=kind.name, **kind.parse(folder, codec, version))


# The bundle the project ships (git-tracked): what `pixlm encode` uses when no --bundle is given,
# the one to pick for archives (the fewest bits on Kodak and held-out photos: benchmarks/results/).
DEFAULT_BUNDLE = resource("checkpoints") / "pixlm-online-max"


def default_bundle() -> Bundle:
    if not (DEFAULT_BUNDLE / MANIFEST_FILE).is_file():
        raise BundleError(f"no --bundle given and the shipped bundle {DEFAULT_BUNDLE} is missing "
                          "(it comes with a git checkout of pixlm); pass --bundle DIR")
    return open_bundle(DEFAULT_BUNDLE)


def shipped_bundles() -> list[str]:
    """Names of the bundles in checkpoints/ (and checkpoints/previous/, as previous/NAME)."""
    root = resource("checkpoints")
    manifests = [*root.glob(f"*/{MANIFEST_FILE}"), *root.glob(f"previous/*/{MANIFEST_FILE}")]
    return sorted(m.parent.relative_to(root).as_posix() for m in manifests)


def resolve_bundle(bundle: str | Path) -> Path:
    """The folder `--bundle` (CLI) or `bundle=` (API) names: a folder, else a shipped bundle's name
    (`pixlm-online-fast`, `previous/pixlm-online-max-2026-12-06`); BundleError in one line otherwise."""
    path = Path(bundle)
    if path.is_dir():
        return path
    shipped = resource("checkpoints") / str(bundle)
    if shipped.is_dir():
        return shipped
    raise BundleError(f"no bundle {str(bundle)!r}: neither a folder nor a shipped bundle; shipped: "
                      f"{', '.join(shipped_bundles()) or 'none'}")


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

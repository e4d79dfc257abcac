"""Codec bundles: the folder the codec loads with nothing else.

A bundle is a `PixelLM.save_pretrained` folder (config.json, model.safetensors, tokenizer,
pixel_vocab.json, prompt.json, pixel_head.safetensors) plus

- `codec.json`: bundle format version and probability precision (bits of the integer frequencies);
- `manifest.json`: the sha256 of every other file and the bundle id, the sha256 of that list.

The bundle id goes into every stream; a decoder refuses a stream made with another bundle. Loading
checks every file against the manifest: a missing, changed or unlisted file is refused.
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .download import sha256_of

FORMAT_VERSION = 1
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

    def load_model(self):
        from .model import PixelLM

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


def export_bundle(checkpoint: Path, out: Path, precision: int = 16) -> Bundle:
    """Bundle a trained checkpoint folder (train.py's `final/`) for the codec."""
    checkpoint, out = Path(checkpoint), Path(out)
    if not 8 <= precision <= 24:
        raise BundleError(f"precision {precision}: must be 8..24 bits (every one of 256 symbols needs a frequency)")
    if not (checkpoint / "model.safetensors").is_file() or not (checkpoint / "pixel_vocab.json").is_file():
        raise BundleError(f"{checkpoint} is not a trained pixlm checkpoint (train.py writes one to OUTPUT_DIR/final)")
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    (out / CODEC_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, "precision": precision}, indent=1))
    write_manifest(out)
    return open_bundle(out)


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
    if not codec or codec.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: bundle format {codec and codec.get('format_version')} is not {FORMAT_VERSION}")
    return Bundle(folder, claimed, int(codec["precision"]))


def bundle_search_path() -> list[Path]:
    """Where a decoder looks for a stream's bundle: $PIXLM_BUNDLES (os.pathsep-separated), then checkpoints/."""
    extra = [Path(p) for p in os.environ.get("PIXLM_BUNDLES", "").split(os.pathsep) if p]
    return extra + [Path(__file__).resolve().parent.parent / "checkpoints"]


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

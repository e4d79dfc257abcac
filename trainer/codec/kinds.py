"""The one table of codec kinds: for each, the codec.json format versions it reads, how its settings
are parsed, how its model is loaded and which codec class codes with it. `bundle.py` (open, load),
`registry.py` (the codec), `info.py` (a stream's bundle), `export.py` and the CLI read KINDS; no
other module names a kind's versions or classes.

A new kind: one `CodecKind` declaration and one line in KINDS. The declarations live here, not in
the codec modules, because `open_bundle` and `pixlm info` read every one of them and must import no
torch (patch.py and wavefront.py import it at the top; stream.py imports bundle.py). The codec class
is named as "module:Class" and imported only when a codec is opened.
"""

import json
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable

from trainer.codec.bundle import CODEC_FILE, CONTEXT_MODEL_TYPE, QUANTIZATIONS, BundleError
from trainer.config import Adaptation

FORMAT_VERSION = 1  # float32 weights
INT8_FORMAT_VERSION = 2  # adds codec.json "quantization": "int8"
ADAPTIVE_FORMAT_VERSION = 3  # adds codec.json "adaptation" (context bundles; trainer.adapt): older decoders refuse it
INTEGER_FORMAT_VERSION = 4  # adds codec.json "quantization": "integer" (+ "adaptation" optional)
ONLINE_FORMAT_VERSION = 5  # "kind": "online": no network, the online engine's settings and tables (trainer.engine)


@dataclass(frozen=True)
class CodecKind:
    name: str  # Bundle.kind; codec.json "kind" where the folder names it
    versions: tuple[int, ...]  # codec.json format versions this kind reads
    parse: Callable[[Path, dict, int], dict]  # (folder, codec.json, version) -> Bundle fields; BundleError
    load: Callable  # (Bundle) -> the model its codec runs
    codec: str  # "module:Class": imported when a codec is opened, so the online codec never imports torch
    modules: tuple[str, ...] = ()  # what the codec needs beyond numpy, numba, Pillow, imagecodecs (the extra)
    cpu_only: bool = True  # else the codec class takes device= (cpu or cuda)
    claims: Callable[[Path, dict], bool] | None = None  # is a folder of this kind; None: codec.json "kind" says so

    def owns(self, folder: Path, codec: dict) -> bool:
        return self.claims(folder, codec) if self.claims else codec.get("kind") == self.name

    def codec_class(self) -> type:
        module, _, name = self.codec.partition(":")
        return getattr(import_module(module), name)


def _online_settings(folder: Path, codec: dict, version: int) -> dict:
    from trainer.engine.settings import EngineSettings

    if int(codec.get("precision", 0)) != 16:
        raise BundleError(f"{folder}: a format {version} bundle is kind online with precision 16")
    try:
        return {"precision": 16, "engine": EngineSettings.from_dict(codec.get("engine", {}))}
    except (TypeError, ValueError) as err:
        raise BundleError(f"{folder}: codec.json engine settings: {err}") from None


def _online_tables(bundle):
    from trainer.engine.tables import load_tables

    try:
        tables = load_tables(bundle.path)
    except (OSError, ValueError) as err:
        raise BundleError(str(err)) from None
    if bundle.engine.network and "net_w1" not in tables:
        raise BundleError(f"{bundle.path}: engine setting network=1, but its tables hold no network")
    return tables


def _network_settings(folder: Path, codec: dict, version: int) -> dict:
    """Formats 1-4: probability precision, weight quantization and the online adaptation."""
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
    return {"precision": int(codec["precision"]), "quantization": quantization, "adaptation": adaptation}


def _check_weights(bundle) -> None:
    from trainer.models.quantize import is_int8_folder

    if is_int8_folder(bundle.path) != (bundle.quantization == "int8"):
        raise BundleError(f"{bundle.path}: codec.json says quantization {bundle.quantization!r} but the weights "
                          f"{'are' if bundle.quantization == 'none' else 'are not'} int8")


def _context_model(bundle):
    _check_weights(bundle)
    if bundle.quantization == "integer":
        from trainer.models.integer_context import IntegerContextModel

        return IntegerContextModel.from_pretrained(bundle.path)
    from trainer.models.context import ContextModel

    return ContextModel.from_pretrained(bundle.path)  # int8 weights are dequantized once at load


def _lm_model(bundle):
    _check_weights(bundle)
    if bundle.quantization == "int8":
        from trainer.models.quantize import load_int8

        return load_int8(bundle.path, attn_implementation="eager")  # float32 after load: same path as below
    from trainer.models.pixel_lm import PixelLM

    # Eager attention: torch's SDPA splits a one-token query over the KV length by thread count,
    # so its results change with the number of threads; the eager softmax(QK^T)V does not.
    return PixelLM.from_pretrained(bundle.path, attn_implementation="eager").eval()


def _is_context_model(folder: Path, codec: dict) -> bool:
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("model_type") == CONTEXT_MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


ONLINE = CodecKind("online", (ONLINE_FORMAT_VERSION,), _online_settings, _online_tables,
                   "trainer.codec.online:OnlineCodec")
CONTEXT = CodecKind("context", (FORMAT_VERSION, INT8_FORMAT_VERSION, ADAPTIVE_FORMAT_VERSION, INTEGER_FORMAT_VERSION),
                    _network_settings, _context_model, "trainer.codec.wavefront:WavefrontCodec",
                    ("torch", "constriction"), claims=_is_context_model)
LM = CodecKind("lm", (FORMAT_VERSION, INT8_FORMAT_VERSION), _network_settings, _lm_model,
               "trainer.codec.patch:PatchCodec", ("torch", "transformers", "constriction"), cpu_only=False,
               claims=lambda folder, codec: True)  # a PixelLM folder: whatever no other kind claims

# A folder's kind is the first that claims it, so LM (which claims any folder) comes last.
KINDS: tuple[CodecKind, ...] = (ONLINE, CONTEXT, LM)


def read_codec(folder: Path) -> dict:
    """A folder's codec.json, or {} where it has none (a training checkpoint) or it is unreadable."""
    try:
        codec = json.loads((Path(folder) / CODEC_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return codec if isinstance(codec, dict) else {}


def kind_of(folder: Path, codec: dict | None = None) -> CodecKind:
    """The kind of a bundle or checkpoint folder: the first in KINDS that claims it."""
    codec = read_codec(folder) if codec is None else codec
    kind = next((kind for kind in KINDS if kind.owns(Path(folder), codec)), None)
    if kind is None:
        raise BundleError(f"{folder}: no codec kind claims it (kinds: {', '.join(k.name for k in KINDS)})")
    return kind


def named(name: str) -> CodecKind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise BundleError(f"no codec kind {name!r}: one of {', '.join(k.name for k in KINDS)}")


def versions() -> tuple[int, ...]:
    """Every bundle format version some kind reads."""
    return tuple(sorted({v for kind in KINDS for v in kind.versions}))

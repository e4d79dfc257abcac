"""Quantized PixelLMs: bitsandbytes loading (GPU, partly CPU) and the codec's deterministic int8 weights.

Two different things:

- `load_bnb(folder, "int8" | "nf4")`: a PixelLM folder loaded through transformers'
  `BitsAndBytesConfig` (LLM.int8 or 4-bit NormalFloat). For evaluation and QLoRA-style work, not for
  the codec: bitsandbytes kernels make no bit-exactness promise. No silent fallback: if
  bitsandbytes is missing or cannot run the request here, QuantizationError says why.
- int8 bundles (`quantize_state` / `load_int8`): weight-only int8 with one symmetric scale per row
  (per output channel of every nn.Linear weight, per token of embeddings) for every 2-D float
  weight, stored in the bundle's safetensors as `NAME` (int8) + `NAME.scale` (float32). At load the
  weights are dequantized to float32 once; from then on the model computes exactly like an fp32
  bundle (same eager fp32 path), so encoder and decoder agree bit for bit just as in fp32.
"""

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from trainer.models.pixel_lm import HEAD_FILE, ModelLoadError, PixelLM

SCALE_SUFFIX = ".scale"
INT8_FORMAT = "pixlm-int8-rowwise-symmetric-v1"
WEIGHT_FILES = ("model.safetensors", HEAD_FILE)


class QuantizationError(RuntimeError):
    """A quantized load that cannot be done here, with the reason (never a silent fp32 fallback)."""


# -- bitsandbytes -------------------------------------------------------------------------------
def _cpu_has_avx512_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def load_bnb(folder, mode: str, device: str | None = None) -> PixelLM:
    """A PixelLM folder with its LM's Linear layers quantized by bitsandbytes: mode "int8" or "nf4".

    The pixel head (256 rows) stays in float32. On CPU, measured with bitsandbytes 0.50.2: both modes
    load and run; a 4-bit forward on AVX512-BF16 CPUs asserts unless every Linear out_features is a
    multiple of 32, so such a model is refused up front with that reason.
    """
    if mode not in ("int8", "nf4"):
        raise QuantizationError(f"bitsandbytes mode {mode!r}: use int8 or nf4")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except Exception as err:  # ImportError, or a broken native library
        raise QuantizationError(f"bitsandbytes is not usable here ({type(err).__name__}: {err}); "
                                "install it with `pip install -e .[quant]`") from None
    folder = Path(folder)
    if not (folder / HEAD_FILE).is_file():
        raise ModelLoadError(f"{folder} is not a pixlm checkpoint: {HEAD_FILE} is missing")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if mode == "int8":
        quant = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_compute_dtype=torch.float32)
        if device == "cpu" and _cpu_has_avx512_bf16():
            config = AutoConfig.from_pretrained(folder)
            with torch.device("meta"):
                skeleton = AutoModelForCausalLM.from_config(config)
            out = skeleton.get_output_embeddings()
            odd = sorted({m.out_features for m in skeleton.modules()
                          if isinstance(m, nn.Linear) and m is not out and m.out_features % 32})
            if odd:
                raise QuantizationError(
                    f"nf4 on this CPU (AVX512-BF16): bitsandbytes' 4-bit CPU kernel fails for Linear layers whose "
                    f"out_features are not multiples of 32 (here {odd}); use int8, a GPU, or such a model")
    try:
        lm = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": device},
                                                  dtype=torch.float32)
    except Exception as err:
        raise QuantizationError(f"bitsandbytes {mode} load of {folder} failed on {device}: "
                                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    return _assemble(folder, lm.eval(), torch.device(device))


def _assemble(folder: Path, lm, device, head_state: dict | None = None) -> PixelLM:
    model = PixelLM.from_pretrained(folder, lm=lm, head_state=head_state)
    model.pixel_head.to(device)
    return model.eval()


# -- int8 weights for bundles -------------------------------------------------------------------
def quantize_tensor(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scale per row): weight[r] ~ q[r] * scale[r], symmetric, |q| <= 127."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays exactly zero
    q = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantize_tensor(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every 2-D floating weight (Linear weights, embeddings) -> int8 + scale; the rest (norms, biases) as is."""
    out = {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() == 2:
            out[name], out[name + SCALE_SUFFIX] = quantize_tensor(tensor)
        else:
            out[name] = tensor.contiguous()
    return out


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in state.items():
        if name.endswith(SCALE_SUFFIX) and name[:-len(SCALE_SUFFIX)] in state:
            continue
        if tensor.dtype == torch.int8:
            if name + SCALE_SUFFIX not in state:
                raise ModelLoadError(f"int8 tensor {name} has no {name}{SCALE_SUFFIX}")
            out[name] = dequantize_tensor(tensor, state[name + SCALE_SUFFIX])
        else:
            out[name] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def write_int8_weights(source: Path, out: Path) -> None:
    """Write the int8 versions of a checkpoint's weight files (model.safetensors, pixel head) into `out`."""
    for name in WEIGHT_FILES:
        if not (source / name).is_file():
            continue  # a context model has no separate pixel head
        with safe_open(source / name, "pt") as f:
            metadata = dict(f.metadata() or {})
        metadata["pixlm_quantization"] = INT8_FORMAT
        save_file(quantize_state(load_file(source / name)), out / name, metadata=metadata)


def is_int8_folder(folder) -> bool:
    with safe_open(Path(folder) / "model.safetensors", "pt") as f:
        return (f.metadata() or {}).get("pixlm_quantization") == INT8_FORMAT


def load_int8(folder, attn_implementation: str = "eager") -> PixelLM:
    """An int8 folder as a float32 PixelLM (weights dequantized once; then exactly the fp32 code path)."""
    folder = Path(folder)
    if not is_int8_folder(folder):
        raise ModelLoadError(f"{folder}: model.safetensors is not {INT8_FORMAT}")
    config = AutoConfig.from_pretrained(folder)
    config._attn_implementation = attn_implementation
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = dequantize_state(load_file(folder / "model.safetensors"))
    missing, unexpected = lm.load_state_dict(state, strict=False)
    params = dict(lm.named_parameters(remove_duplicate=False))
    loaded = [params[k] for k in state if k in params]
    untied = [k for k in missing if k in params and not any(params[k] is p for p in loaded)]
    if unexpected or untied:
        raise ModelLoadError(f"{folder}: int8 weights do not match config.json "
                             f"(unexpected {unexpected[:3]}, missing {untied[:3]})")
    head_state = dequantize_state(load_file(folder / HEAD_FILE))
    return _assemble(folder, lm.eval(), torch.device("cpu"), head_state)


# -- measuring what quantization costs ----------------------------------------------------------
@torch.no_grad()
def validation_bpsp(model: PixelLM, images: list[Path], patches_per_image: int = 16, seed: int = 1,
                    batch_size: int = 16) -> dict:
    """Cross-entropy (bits per subpixel, PixelLM.forward bits / count) on random patches of `images`,
    cut with the model's own prompt: same patches for every model that shares a prompt."""
    from trainer.tokenize.pixels import crop_positions
    from trainer.images.files import load_image

    device = model.pixel_head.weight.device
    spec = model.prompt.spec
    sequences = []
    for path in images:
        image = load_image(path)
        for patch in crop_positions(image.shape, spec.patch_height, spec.patch_width, patches_per_image, seed,
                                    Path(path).name):
            ids, n_prefix = model.prompt.sequence(image, patch)
            sequences.append((ids, n_prefix))
    bits = count = 0.0
    # Equal lengths batch without padding: group by length (edge crops of small images are shorter).
    by_length: dict[int, list] = {}
    for ids, n_prefix in sequences:
        by_length.setdefault((len(ids), n_prefix), []).append(ids)
    for (length, n_prefix), group in sorted(by_length.items()):
        for start in range(0, len(group), batch_size):
            ids = torch.from_numpy(np.stack(group[start:start + batch_size])).to(device)
            mask = torch.zeros_like(ids)
            mask[:, n_prefix:] = 1
            out = model(input_ids=ids, loss_mask=mask)
            bits += out["bits"].item()
            count += out["count"].item()
    return {"bpsp": bits / count, "subpixels": int(count), "patches": len(sequences), "images": len(images)}


def file_bytes(folder, names=WEIGHT_FILES) -> int:
    return sum((Path(folder) / n).stat().st_size for n in names)


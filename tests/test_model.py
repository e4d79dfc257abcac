import numpy as np
import pytest
import torch

from trainer.config import LoraSettings, ModelConfig, PromptConfig, load_recipe
from trainer.models.pixel_lm import ModelLoadError, PixelLM, build_pixel_lm, resolve_base
from trainer.tokenize.pixels import patch_grid, patch_values
from trainer.images.files import load_image

TINY = ModelConfig(base="config", tokenizer="bytes", config=dict(
    model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4))
PROMPT = PromptConfig(patch_height=4, patch_width=4, context_rows=1, context_margin=2, instruction="px")


def batch_of_patches(model, image, patches):
    rows = [model.prompt.sequence(image, p) for p in patches]
    ids = torch.tensor(np.stack([r[0] for r in rows]))
    mask = torch.zeros_like(ids)
    mask[:, rows[0][1]:] = 1
    return ids, mask, rows[0][1]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_pixel_lm(TINY, PROMPT, LoraSettings()).eval()


def test_pixel_head_equals_gathered_vocabulary_logits(tiny):
    ids = torch.tensor([tiny.prompt.prefix(np.full((1, 8, 3), -1, np.int16)).tolist() + list(tiny.vocab.token_ids[:9])])
    with torch.no_grad():
        full = tiny.lm(ids).logits[..., torch.as_tensor(tiny.vocab.ids)]
        ours = tiny.pixel_head(tiny.hidden_states(ids)[0])
    assert torch.allclose(full, ours, atol=1e-6)


def test_bits_are_cross_entropy_of_the_patch_tokens(tiny, photos):
    image = load_image(photos[0])[:8, :8]
    patches = patch_grid(8, 8, 4, 4)
    ids, mask, n = batch_of_patches(tiny, image, patches)
    with torch.no_grad():
        out = tiny(ids, mask)
        logp = tiny.log_probs(tiny.hidden_states(ids)[0][:, n - 1:-1])
    values = torch.tensor(np.stack([patch_values(image, p) for p in patches])).long()
    expected = -logp.gather(2, values[..., None]).sum() / np.log(2)
    assert out["count"].item() == values.numel()
    assert out["bits"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["seq_bits"].sum().item() == pytest.approx(expected.item(), rel=1e-5)


def test_kv_cache_steps_match_full_forward_for_a_batch_of_patches(tiny, photos):
    image = load_image(photos[1])[100:108, 100:108]
    patches = patch_grid(8, 8, 4, 4)
    ids, _, n = batch_of_patches(tiny, image, patches)
    values = torch.tensor(np.stack([patch_values(image, p) for p in patches]))
    logp, cache = tiny.prefill(ids[:, :n], values.shape[1])
    steps = [logp]
    for k in range(values.shape[1] - 1):
        logp, cache = tiny.step(values[:, k], cache)
        steps.append(logp)
    stepwise = torch.stack(steps, 1)
    with torch.no_grad():
        full = tiny.log_probs(tiny.hidden_states(ids)[0][:, n - 1:-1])
    assert stepwise.shape == (4, 48, 256)
    assert torch.allclose(stepwise, full, atol=1e-4)  # close, not bitwise: the codec must use one path


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not a pixlm checkpoint"):
        PixelLM.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not installed"):
        resolve_base("package:no_such_pkg_xyz/model.gguf")
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_base(str(tmp_path / "m.gguf"))


def test_lora_on_pretrained_smollm2_learns_pixels(photos):
    """The offline pretrained LLM: GGUF load, added pixel tokens, LoRA + trainable tokens, real gradient steps."""
    cfg = load_recipe("lora_smollm2", ["prompt.patch_height=4", "prompt.patch_width=4", "prompt.context_margin=2"])
    torch.manual_seed(0)
    model = build_pixel_lm(cfg.model, cfg.prompt, cfg.lora)
    assert model.vocab.kind == "added" and model.lm.config.num_hidden_layers == 30
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("trainable_tokens" in n for n in trainable)
    assert not any("layers.0.mlp.up_proj.base_layer" in n for n in trainable)
    image = load_image(photos[2])
    ids, mask, _ = batch_of_patches(model, image, patch_grid(*image.shape[:2], 4, 4)[500:502])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(4):
        loss = model(ids, mask)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses

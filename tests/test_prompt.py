import numpy as np
import pytest
import torch

from trainer.config import LoraSettings, ModelConfig, PromptConfig
from trainer.models.pixel_lm import build_pixel_lm, byte_tokenizer
from trainer.tokenize.pixels import patch_grid, patch_values
from trainer.tokenize.prompt import PromptBuilder
from trainer.tokenize.vocab import build_pixel_vocab

SPEC = PromptConfig(patch_height=4, patch_width=4, context_rows=2, context_margin=2)


@pytest.fixture(scope="module")
def builder():
    tokenizer = byte_tokenizer()
    return PromptBuilder(SPEC, tokenizer, build_pixel_vocab(tokenizer))


def decoded_before(patch, y, x, c, channels):
    """Index in the patch's scan order of subpixel (y, x, c), or None if not in this patch."""
    if not (patch.y <= y < patch.y + patch.height and patch.x <= x < patch.x + patch.width):
        return None
    return ((y - patch.y) * patch.width + (x - patch.x)) * channels + c


def test_no_token_sees_a_pixel_the_decoder_does_not_have(builder):
    """Change any one subpixel: for every patch, only positions at or after it in scan order change."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (10, 9, 3), dtype=np.uint8)
    patches = patch_grid(10, 9, 4, 4)
    reference = {p: builder.sequence(image, p) for p in patches}
    for y in range(10):
        for x in range(9):
            for c in range(3):
                changed = image.copy()
                changed[y, x, c] ^= 0x5A
                for p in patches:
                    ids, n_prefix = builder.sequence(changed, p)
                    ref, _ = reference[p]
                    diff = np.flatnonzero(ids != ref)
                    k = decoded_before(p, y, x, c, 3)
                    if k is not None:  # inside the patch: first change exactly at its own token
                        assert diff.tolist() == [n_prefix + k]
                    elif y >= p.y:  # rows the decoder has not finished when this patch row starts
                        assert diff.size == 0, (p, y, x, c)
                    # rows above the patch may appear in the prefix (they are decoded already)
                    else:
                        assert diff.size == 0 or diff.max() < n_prefix


def test_prefix_has_fixed_length_and_context_is_rows_above(builder):
    image = np.random.default_rng(1).integers(0, 256, (12, 13, 3), dtype=np.uint8)
    lengths = {builder.sequence(image, p)[1] for p in patch_grid(12, 13, 4, 4)}
    assert lengths == {builder.prefix_length(3)}
    ids, n = builder.sequence(image, patch_grid(12, 13, 4, 4)[5])  # patch at y=4, x=4
    ctx = builder.vocab.encode(image[2:4, 2:10].reshape(-1))
    assert ctx.tolist() in [ids[i:i + ctx.size].tolist() for i in range(n)]


def test_model_predictions_are_causal_and_loss_covers_patch_only():
    torch.manual_seed(0)
    model = build_pixel_lm(
        ModelConfig(base="config", tokenizer="bytes", config=dict(
            model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)),
        SPEC, LoraSettings()).eval()
    image = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    patch = patch_grid(8, 8, 4, 4)[3]
    ids, n = model.prompt.sequence(image, patch)
    mask = torch.zeros(1, len(ids), dtype=torch.long)
    mask[0, n:] = 1
    out = model(torch.tensor(ids)[None], mask)
    assert out["count"].item() == patch_values(image, patch).size == 48

    def logp(sequence):
        hidden, _ = model.hidden_states(torch.tensor(sequence)[None])
        return model.log_probs(hidden[0, n - 1:-1])  # row k predicts patch subpixel k

    base = logp(ids)
    k = 20
    changed = image.copy()
    changed[patch.y + k // 12, patch.x + (k % 12) // 3, k % 3] ^= 0xFF
    other, _ = model.prompt.sequence(changed, patch)
    after = logp(other)
    assert torch.equal(after[:k + 1], base[:k + 1])  # predictions up to subpixel k never see it
    assert not torch.equal(after[k + 1:], base[k + 1:])

"""Prompt-based next-pixel prediction: instruction + in-context pixel priors + the patch.

A sequence is laid out as

    [instruction][context marker][context pixels, FILL -> fill token][patch marker][patch pixels]

Everything before the patch pixels (the prefix) has a fixed length for a given prompt spec and
channel count: same-size patches batch without padding and step together through a KV cache.
The loss, and later the coder, covers the patch pixels only. The context holds only pixels from
rows above the patch (see `pixels.context_values`), so no token's inputs depend on a pixel the
decoder has not produced yet.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from trainer.config import PromptConfig
from trainer.tokenize.pixels import CHANNEL_NAMES, FILL, SCAN_ORDER, Patch, context_values, patch_values
from trainer.tokenize.vocab import PixelVocab, VocabError

FILE_NAME = "prompt.json"


class PromptBuilder:
    def __init__(self, spec: PromptConfig, tokenizer, vocab: PixelVocab):
        self.spec, self.vocab = spec, vocab
        fill = tokenizer.encode(spec.fill, add_special_tokens=False)
        if len(fill) != 1 or fill[0] in vocab.token_ids:
            raise VocabError(f"prompt.fill {spec.fill!r} must be one token that is not a pixel token")
        self.fill_id = fill[0]
        self._patch_marker = self._text(tokenizer, spec.patch_marker)
        self._heads = {c: self._text(tokenizer, spec.instruction.format(
            channels=c, channel_names=CHANNEL_NAMES[c])) + self._text(tokenizer, spec.context_marker)
            for c in CHANNEL_NAMES}

    @staticmethod
    def _text(tokenizer, text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False) if text else []

    @property
    def context_width(self) -> int:
        return self.spec.context_margin * 2 + self.spec.patch_width

    def prefix_length(self, channels: int) -> int:
        return (len(self._heads[channels]) + self.spec.context_rows * self.context_width * channels
                + len(self._patch_marker))

    def prefix(self, context: np.ndarray) -> np.ndarray:
        """Prefix ids (int64) for a context array from `context_values`."""
        flat = context.reshape(-1)
        ids = np.where(flat == FILL, self.fill_id, self.vocab.ids[np.clip(flat, 0, 255)])
        return np.concatenate([self._heads[context.shape[-1]], ids, self._patch_marker]).astype(np.int64)

    def context(self, image: np.ndarray, patch: Patch) -> np.ndarray:
        s = self.spec
        return context_values(image, patch, s.context_rows, s.context_margin, s.patch_width)

    def sequence(self, image: np.ndarray, patch: Patch) -> tuple[np.ndarray, int]:
        """(token ids of prefix + patch, prefix length) for one patch of an image."""
        prefix = self.prefix(self.context(image, patch))
        return np.concatenate([prefix, self.vocab.encode(patch_values(image, patch))]), len(prefix)

    def save(self, directory: Path) -> None:
        data = dataclasses.asdict(self.spec) | {"scan_order": SCAN_ORDER}
        Path(directory, FILE_NAME).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, directory: Path, tokenizer, vocab: PixelVocab) -> "PromptBuilder":
        data = json.loads(Path(directory, FILE_NAME).read_text())
        if data.pop("scan_order", SCAN_ORDER) != SCAN_ORDER:
            raise VocabError(f"{directory}: prompt was made for another scan order")
        return cls(PromptConfig(**data), tokenizer, vocab)

"""Tokenization step 2: subpixel values 0..255 <-> LM token ids, a verified bijection.

Where the base tokenizer has every numeral "0".."255" as a single token (Llama-3's tiktoken
BPE does), those tokens are reused, as P²-LLM does: the pretrained LM already knows them as
numbers. Where it splits digits (SmolLM2, Llama-2, Mistral), 256 dedicated tokens `<px_V>`
are added and the embeddings resized; each new row starts as the mean of the rows of the
digits of V, so the pretrained model's sense of numbers carries over.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FILE_NAME = "pixel_vocab.json"


class VocabError(ValueError):
    pass


@dataclass(frozen=True)
class PixelVocab:
    token_ids: tuple[int, ...]  # token_ids[v] is the token of value v
    kind: str  # "numerals" or "added"

    def __post_init__(self):
        if len(self.token_ids) != 256 or len(set(self.token_ids)) != 256 or min(self.token_ids) < 0:
            raise VocabError("a pixel vocabulary needs 256 distinct non-negative token ids")

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self.token_ids, dtype=np.int64)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """uint8 values (any shape) -> int64 token ids."""
        values = np.asarray(values)
        if values.dtype != np.uint8:
            raise VocabError(f"pixel values must be uint8, got {values.dtype}")
        return self.ids[values]

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """Token ids -> uint8 values; an id outside the pixel vocabulary is an error."""
        token_ids = np.asarray(token_ids, dtype=np.int64)
        inverse = np.full(max(self.token_ids) + 1, -1, dtype=np.int16)
        inverse[self.ids] = np.arange(256)
        inside = (token_ids >= 0) & (token_ids < inverse.size)
        values = np.where(inside, inverse[np.where(inside, token_ids, 0)], -1)
        if (values < 0).any():
            raise VocabError(f"token id {token_ids[values < 0].flat[0]} is not a pixel token")
        return values.astype(np.uint8)

    def save(self, directory: Path) -> None:
        Path(directory, FILE_NAME).write_text(json.dumps({"kind": self.kind, "token_ids": list(self.token_ids)}))

    @classmethod
    def load(cls, directory: Path) -> "PixelVocab":
        path = Path(directory, FILE_NAME)
        if not path.is_file():
            raise VocabError(f"{directory}: no {FILE_NAME}")
        data = json.loads(path.read_text())
        return cls(tuple(int(t) for t in data["token_ids"]), data["kind"])


def single_token_numerals(tokenizer) -> list[int] | None:
    """Token ids of "0".."255" if each is exactly one token that decodes back to itself."""
    ids = []
    for v in range(256):
        encoded = tokenizer.encode(str(v), add_special_tokens=False)
        if len(encoded) != 1 or tokenizer.decode(encoded).strip() != str(v):
            return None
        ids.append(encoded[0])
    return ids if len(set(ids)) == 256 else None


def added_token(v: int) -> str:
    return f"<px_{v}>"


def build_pixel_vocab(tokenizer, kind: str = "auto") -> PixelVocab:
    """Pixel vocabulary for `tokenizer`; adds `<px_V>` tokens to it when kind needs them.

    After an "added" vocabulary, call `resize_embeddings(model, tokenizer, vocab)`.
    """
    if kind not in ("auto", "numerals", "added"):
        raise VocabError(f"pixel_vocab must be auto, numerals or added, not {kind!r}")
    if kind in ("auto", "numerals"):
        ids = single_token_numerals(tokenizer)
        if ids is not None:
            return PixelVocab(tuple(ids), "numerals")
        if kind == "numerals":
            raise VocabError("this tokenizer does not have all of 0..255 as single tokens; use pixel_vocab=added")
    tokenizer.add_tokens([added_token(v) for v in range(256)])
    ids = [tokenizer.convert_tokens_to_ids(added_token(v)) for v in range(256)]
    return PixelVocab(tuple(ids), "added")


def check_bijection(vocab: PixelVocab, tokenizer) -> None:
    """Exhaustive check: every value maps to one token and back, through the tokenizer's text too."""
    values = np.arange(256, dtype=np.uint8)
    if not np.array_equal(vocab.decode(vocab.encode(values)), values):
        raise VocabError("pixel vocabulary is not a bijection")
    for v, t in enumerate(vocab.token_ids):
        text = str(v) if vocab.kind == "numerals" else added_token(v)
        if tokenizer.encode(text, add_special_tokens=False) != [t]:
            raise VocabError(f"value {v}: tokenizer encodes {text!r} as "
                             f"{tokenizer.encode(text, add_special_tokens=False)}, not [{t}]")


@torch.no_grad()
def resize_embeddings(model, tokenizer, vocab: PixelVocab) -> None:
    """Grow the model's embeddings to the tokenizer; new pixel rows = mean of their digits' rows."""
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    tables = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != tables[0].data_ptr():
        tables.append(out.weight)
    for v, t in enumerate(vocab.token_ids):
        if t < old:
            continue
        digits = [d for d in tokenizer.encode(str(v), add_special_tokens=False) if d < old]
        for table in tables:
            table[t] = table[digits].mean(0) if digits else table[:old].mean(0)

"""Write a copy of a GGUF base model that a small transfer can carry (for the GPU machine).

A PixelLM reads token embeddings only for its prompt text and its pixel tokens (the new pixel
rows start as the mean of their digits' rows), and predicts through its own 256-row pixel head:
the other ~49 k embedding rows are never used. This script zeroes them (same shapes, so
transformers loads the file as it is) and compresses the result with xz; the layers themselves
are kept byte for byte. `--check` loads both files and compares the PixelLM's log-probabilities.

    python scripts/slim_gguf.py OUT.gguf.xz [--recipe lora_smollm2] [--check]

Unpack with `python -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" IN OUT`.
"""

import argparse
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import load_recipe  # noqa: E402
from trainer.models.pixel_lm import load_tokenizer, resolve_base  # noqa: E402
from trainer.tokenize.pixels import CHANNEL_NAMES  # noqa: E402


def used_tokens(cfg) -> set[int]:
    """Every base-vocabulary token a PixelLM of this recipe reads: prompt texts, fill, digits."""
    tokenizer = load_tokenizer(cfg.model)
    p = cfg.prompt
    texts = [p.instruction.format(channels=c, channel_names=n) for c, n in CHANNEL_NAMES.items()]
    texts += [p.context_marker, p.patch_marker, p.fill] + [str(v) for v in range(256)]
    return {t for text in texts for t in tokenizer.encode(text, add_special_tokens=False)}


def slim(source: Path, keep: set[int], out: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(source))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    rows = int(embd.shape[1])
    row_bytes = embd.n_bytes // rows
    data = bytearray(source.read_bytes())
    zero_row = bytes(row_bytes)  # Q8_0/F16/F32 blocks of zeros decode to 0.0
    for r in range(rows):
        if r not in keep:
            start = embd.data_offset + r * row_bytes
            data[start:start + row_bytes] = zero_row
    with lzma.open(out, "wb", preset=6) as f:
        f.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--recipe", default="lora_smollm2")
    ap.add_argument("--check", action="store_true", help="compare PixelLM log-probs of both files")
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"{args.out} exists; not overwriting it")
    cfg = load_recipe(args.recipe)
    folder, name = resolve_base(cfg.model.base)
    keep = used_tokens(cfg)
    slim(Path(folder, name), keep, args.out)
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB, {len(keep)} embedding rows kept")
    if args.check:
        check(cfg, Path(folder, name), args.out)


def check(cfg, full: Path, packed: Path) -> None:
    import tempfile

    import torch
    from PIL import Image

    from trainer.models.pixel_lm import build_pixel_lm
    from trainer.tokenize.pixels import patch_grid

    with tempfile.TemporaryDirectory() as tmp:
        slim_path = Path(tmp, full.name)
        with lzma.open(packed) as src, open(slim_path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        image = np.asarray(Image.new("RGB", (32, 32), (120, 80, 40)))
        outs = []
        for path in (full, slim_path):
            cfg.model.base = str(path)
            torch.manual_seed(0)
            model = build_pixel_lm(cfg.model, cfg.prompt, cfg.lora).eval()
            ids, _ = model.prompt.sequence(image, patch_grid(32, 32, 16, 16)[3])
            with torch.no_grad():
                hidden, _ = model.hidden_states(torch.as_tensor(ids)[None])
                outs.append(model.log_probs(hidden))
        same = torch.equal(outs[0], outs[1])
        print("log-probs identical" if same else f"log-probs differ by {(outs[0] - outs[1]).abs().max():.3g}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()

"""Teacher distributions cached once (on the GPU) so a student learns from them on the CPU.

For every patch of a patch file's training split, an LM teacher (PixelLM) gives the 256-way
distribution of each patch subpixel given everything before it (its prompt: the rows above and
the patch so far). A shard keeps, per subpixel, the teacher's `top_k` likeliest values and their
code lengths in 1/16-bit steps (uint8: -log2 p rounded, 255 = 15.94 bits or more); the remaining
probability mass counts as spread evenly over the other values. ~12 KB per 16x16 RGB patch at
k = 8, so thousands of patches travel back in a few files of at most 15 MiB.

    shard arrays: origin (N, 3) int32 (image index, y, x), images (names), values (N, L, k) uint8,
                  nlp16 (N, L, k) uint8, meta (json: patch geometry, k, teacher, its val bpsp)

`cached_kl_bits` is the distillation term against such a target (trainer.train.context uses it).
"""

import json
from pathlib import Path

import numpy as np
import torch

from trainer.units import LN2

STEPS_PER_BIT = 16


class CacheError(ValueError):
    pass


@torch.no_grad()
def write_cache(teacher, patches, out_dir: Path, top_k: int = 8, batch_size: int = 64, limit: int = 0,
                max_mib: float = 15.0, autocast_dtype=None, meta: dict | None = None) -> list[Path]:
    """Run `teacher` (a PixelLM, already on its device) over the patches of `patches` (a PatchFile
    split); write shards cache-000.npz... into out_dir (refuses existing shards); their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("cache-*.npz")):
        raise CacheError(f"{out_dir} already holds cache shards; not overwriting them")
    device = teacher.pixel_head.weight.device
    count = min(len(patches), limit) if limit else len(patches)
    length = len(patches.patch(0))
    per_shard = max(1, int(max_mib * 2**20 // (2 * length * top_k)))
    shards, values, nlp, first = [], [], [], 0
    header = {"top_k": top_k, "length": length, "steps_per_bit": STEPS_PER_BIT, **(meta or {})}
    for start in range(0, count, batch_size):
        items = [patches[i] for i in range(start, min(start + batch_size, count))]
        ids = torch.stack([it["input_ids"] for it in items]).to(device)
        mask = torch.stack([it["loss_mask"] for it in items]).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            log_probs = teacher(ids, mask)["log_probs"].float()  # (B * L, 256), rows patch by patch
        top = log_probs.topk(top_k, dim=-1)
        code = torch.clamp(torch.round(-top.values / LN2 * STEPS_PER_BIT), 0, 255)
        values.append(top.indices.to(torch.uint8).reshape(len(items), length, top_k).cpu().numpy())
        nlp.append(code.to(torch.uint8).reshape(len(items), length, top_k).cpu().numpy())
        done = start + len(items)
        if sum(len(v) for v in values) >= per_shard or done == count:
            v, n = np.concatenate(values), np.concatenate(nlp)
            path = out_dir / f"cache-{len(shards):03d}.npz"
            np.savez(path, origin=patches.origin[first:first + len(v)], images=patches.images, values=v, nlp16=n,
                     meta=np.asarray(json.dumps(header)))
            shards.append(path)
            first += len(v)
            values, nlp = [], []
    return shards


def load_cache(folder: Path) -> dict:
    """Every shard of a cache folder, concatenated: origin, images, values, nlp16, meta."""
    paths = sorted(Path(folder).glob("cache-*.npz"))
    if not paths:
        raise CacheError(f"teacher_cache={folder}: no cache-*.npz shards there")
    parts = [np.load(p) for p in paths]
    images = parts[0]["images"]
    if any(not np.array_equal(p["images"], images) for p in parts):
        raise CacheError(f"teacher_cache={folder}: shards from different patch files")
    return {"origin": np.concatenate([p["origin"] for p in parts]), "images": images.tolist(),
            "values": np.concatenate([p["values"] for p in parts]), "nlp16": np.concatenate([p["nlp16"] for p in parts]),
            "meta": json.loads(str(parts[0]["meta"]))}


def target_log_probs(values: torch.Tensor, nlp16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, k) top-k natural-log probabilities of a cached target and (N,) the log-probability of each
    other value (the rest of the mass spread evenly; renormalized where rounding overshoots)."""
    log_p = -nlp16.float() / STEPS_PER_BIT * LN2
    mass = log_p.exp().sum(-1)
    rest = torch.clamp(1 - mass, min=1e-6)
    total = mass + rest
    others = torch.log(rest / (256 - values.shape[-1]) / total)
    return log_p - torch.log(total)[:, None], others


def cached_kl_bits(values: torch.Tensor, nlp16: torch.Tensor, student_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(cached teacher || student) in bits for each row: values/nlp16 (N, k), student (N, 256).
    Over the 256 - k values outside the top k the target is flat (p_o each), so their part is
    p_o * ((256 - k) log p_o - sum of the student's log q_j there)."""
    top_logp, other_logp = target_log_probs(values, nlp16)
    student_top = student_log_probs.gather(1, values.long())
    outside = student_log_probs.sum(-1) - student_top.sum(-1)
    kl = (top_logp.exp() * (top_logp - student_top)).sum(-1)
    kl = kl + other_logp.exp() * ((256 - values.shape[-1]) * other_logp - outside)
    return kl / LN2


def cache_summary(cache: dict) -> dict:
    """Size of a cache and the mean probability its top k hold (over its first 64 patches)."""
    code = torch.from_numpy(cache["nlp16"][:64].astype(np.float32))
    mass = torch.exp(-code / STEPS_PER_BIT * LN2).sum(-1).mean().item()
    return {"patches": len(cache["origin"]), "top_k": cache["meta"]["top_k"], "top_k_mass": round(mass, 4)}

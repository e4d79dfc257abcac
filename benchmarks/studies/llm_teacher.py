"""Measure a trained LM teacher (a train.py final/ folder) on one device; writes JSON as it goes.

1. val bpsp on the patch file's validation split (float32 and bf16 autocast);
2. the teacher cache for distillation (trainer.train.teacher_cache) from its training split;
3. real coding on Kodak crops: bundle exported, encoded and decoded on this device (on a GPU the
   CUDA numeric mode), bit-exact check, file bpsp, speed;
4. the model's code length on whole Kodak images (bf16 autocast forward, teacher-forced: the ideal
   the codec approaches; step 3 shows the gap on the crops).

Steps 1-2 need --patch-file (left out: skipped). A teacher folder without merged weights (what a GPU
run brings back: adapter/, pixel head, tokenizer) is first rebuilt on --base (`from_adapter`).

    python benchmarks/studies/llm_teacher.py --teacher checkpoints/lora_smollm2_gpu/final \
        --patch-file gpu/patches-smollm2.npz --kodak ../shared/data/kodak --out benchmarks/results/llm_teacher \
        --device cuda --cache-patches 3000
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


from trainer.models.pixel_lm import PixelLM
from trainer.tokenize.pixels import patch_grid
from trainer.images.files import image_files, load_image, to_image
from trainer.train.patch_file import PatchFile


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def sequence_bits(model, sequences: list[np.ndarray], n_prefix: int, device, batch: int, bf16: bool) -> float:
    """Total bits of the patch tokens of same-length sequences (teacher-forced)."""
    total = 0.0
    for start in range(0, len(sequences), batch):
        ids = torch.as_tensor(np.stack(sequences[start:start + batch])).to(device)
        mask = torch.zeros_like(ids)
        mask[:, n_prefix:] = 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            total += model(ids, mask)["bits"].double().item()
    return total


def val_bpsp(model, patches: PatchFile, device, batch: int, bf16: bool) -> float:
    items = [patches[i] for i in range(len(patches))]
    n_prefix = int((items[0]["loss_mask"] == 0).sum())
    bits = sequence_bits(model, [it["input_ids"].numpy() for it in items], n_prefix, device, batch, bf16)
    return bits / sum(int(it["loss_mask"].sum()) for it in items)


def image_bpsp(model, image: np.ndarray, device, batch: int) -> float:
    """Code length of a whole image under the model (bf16 forward), in bits per subpixel; patches
    of the same size batch together (edge patches are shorter)."""
    groups = {}
    for patch in patch_grid(image.shape[0], image.shape[1], model.prompt.spec.patch_height, model.prompt.spec.patch_width):
        ids, n_prefix = model.prompt.sequence(image, patch)
        groups.setdefault(len(ids), (n_prefix, []))[1].append(ids)
    bits = sum(sequence_bits(model, seqs, n, device, batch, True) for n, seqs in groups.values())
    return bits / image.size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--patch-file", type=Path, default=None, help="val bpsp and the teacher cache (left out: skipped)")
    ap.add_argument("--base", default=None, help="base model to rebuild an adapter-only teacher on (a path or hub id)")
    ap.add_argument("--kodak", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report", type=Path, default=None, help="where the JSON goes (default: OUT/teacher.json)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--cache-patches", type=int, default=3000)
    ap.add_argument("--crops", type=int, default=1, help="Kodak images coded as crops (the first N)")
    ap.add_argument("--crop", default="256x32", help="WxH of each coded crop (top left)")
    ap.add_argument("--kodak-images", type=int, default=24)
    ap.add_argument("--kodak-seconds", type=float, default=30, help="stop step 4 after this long")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "teacher": str(args.teacher)}
    path = args.report or args.out / "teacher.json"

    def save():
        path.write_text(json.dumps(report, indent=1))

    if not (args.teacher / "model.safetensors").is_file():  # adapter-only: merge it into the base once
        from trainer.models.pixel_lm import from_adapter

        start = time.perf_counter()
        merged = args.out / "merged"
        from_adapter(args.teacher, args.base).save_pretrained(merged)
        report["rebuilt_from_adapter_s"] = round(time.perf_counter() - start, 1)
        args.teacher = merged
    model = PixelLM.from_pretrained(args.teacher).eval().to(device)
    if args.patch_file is not None:
        measure_patches(model, args, device, report, save)
    run_codec_and_kodak(model, args, device, report, save)


def measure_patches(model, args, device, report, save) -> None:
    val = PatchFile(args.patch_file, "val", model.prompt)
    start = time.perf_counter()
    report["val"] = {"patches": len(val), "bpsp_fp32": val_bpsp(model, val, device, args.batch, False),
                     "bpsp_bf16": val_bpsp(model, val, device, args.batch, True)}
    report["val"]["seconds"] = round(time.perf_counter() - start, 2)
    print("val", report["val"], flush=True)
    save()

    from trainer.train.teacher_cache import write_cache

    train = PatchFile(args.patch_file, "train", model.prompt)
    start = time.perf_counter()
    shards = write_cache(model, train, args.out / "cache", limit=args.cache_patches, batch_size=args.batch,
                         autocast_dtype=torch.bfloat16, meta={"teacher": str(args.teacher),
                         "teacher_val_bpsp_bf16": report["val"]["bpsp_bf16"],
                         **{k: getattr(model.prompt.spec, k) for k in ("patch_height", "patch_width")}})
    sync(device)
    report["cache"] = {"patches": min(len(train), args.cache_patches), "shards": [s.name for s in shards],
                       "seconds": round(time.perf_counter() - start, 2)}
    print("cache", report["cache"], flush=True)
    save()


def run_codec_and_kodak(model, args, device, report, save) -> None:
    from trainer.export import export_bundle
    from trainer.codec.patch import PatchCodec

    bundle_dir = args.out / "bundle"
    export_bundle(args.teacher, bundle_dir)
    codec = PatchCodec(bundle_dir, device=args.device, progress=False, fallback=False)
    width, height = (int(v) for v in args.crop.split("x"))
    crops = []
    for source in image_files(args.kodak)[:args.crops]:
        crop = load_image(source)[:height, :width]
        png = args.out / f"{source.stem}-crop.png"
        to_image(crop).save(png)
        sync(device)
        enc = codec.encode(png, args.out / f"{source.stem}-crop.pxl")
        decoded, dec = codec.decode(args.out / f"{source.stem}-crop.pxl")
        crops.append({"image": source.name, "crop": args.crop, "exact": bool(np.array_equal(decoded, crop)),
                      "bpsp": enc.bpsp, "ideal_bpsp_fp32": enc.model_bpsp,
                      "encode_s": round(enc.seconds, 2), "decode_s": round(dec.seconds, 2),
                      "decode_subpixels_per_s": round(crop.size / dec.seconds), "numeric_mode": codec.numeric_mode})
        print("crop", crops[-1], flush=True)
        report["coded_crops"] = crops
        save()
    del codec
    torch.use_deterministic_algorithms(False)  # the codec's CUDA mode turned it on; the forwards below need not
    for entry, source in zip(crops, image_files(args.kodak)):
        entry["forward_bpsp_bf16"] = image_bpsp(model, load_image(source)[:height, :width], device, args.batch)
    save()

    start, kodak = time.perf_counter(), []
    for source in image_files(args.kodak)[:args.kodak_images]:
        if time.perf_counter() - start > args.kodak_seconds:
            break
        image = load_image(source)
        kodak.append({"image": source.name, "bpsp": image_bpsp(model, image, device, args.batch)})
        print("kodak", kodak[-1], flush=True)
    sync(device)
    seconds = time.perf_counter() - start
    # mean over images (Kodak's images are the same size, so also total bits / total subpixels)
    report["kodak_forward_bf16"] = {"images": len(kodak), "mean_bpsp": float(np.mean([k["bpsp"] for k in kodak])) if kodak else None,
                                    "seconds": round(seconds, 2), "batch": args.batch, "per_image": kodak}
    save()
    print(json.dumps({k: v for k, v in report.items() if k != "kodak_forward_bf16"}, indent=1))
    print("kodak mean", report["kodak_forward_bf16"]["mean_bpsp"], "over", len(kodak), "images")


if __name__ == "__main__":
    main()

"""pixlm's JPEG coefficient model (trainer/engine/jpeg_model.py) against Lepton as one partition, on
the JPEG files the model was developed on: photos 041-049 of the shared photos (never in the JPEG
bench set, which takes the first 40), saved by Pillow in the bench set's kinds (041-043 as 4:2:0 q90,
4:4:4 q90 and 4:2:0 q75 each, the others one kind each, in turn). Per file: the sizes, the model's
bits by decision kind, its seconds (one thread). Progressive files are listed, not coded (the model
takes baseline files only). Then a warm start: four files each coded after another of the same
kind in the same model state, against alone. With `--paq8px PATH`: paq8px -8 (its JPEG model) on
three of the files, decoded and compared.

    python -m benchmarks.studies.jpeg_model_study --photos ../shared/data/photos \
        --paq8px ~/.cache/paq8px/b/paq8px --out benchmarks/results/jpeg_model_study.json
"""

import argparse
import io
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.jpeg_set import KINDS
from trainer.codec import jpeg, jpeg_coefficients, jpeg_scan
from trainer.engine import jpeg_model, rangecoder

KIND_NAMES = ("counts", "zero", "bit length", "lower bits", "sign")
WARM_PAIRS = (("041-q90-420.jpg", "042-q90-420.jpg"), ("043-q75-420.jpg", "049-q75-420.jpg"),
              ("041-q90-444.jpg", "043-q90-444.jpg"), ("042-q75-420.jpg", "041-q75-420.jpg"))
PAQ8PX_FILES = ("049-q75-420.jpg", "041-q90-444.jpg", "046-q90-422.jpg")


def _bits(scan, model) -> float:
    """The model's ideal code length of a scan's coefficients in bytes, from the state `model`."""
    offsets, rows, cols, sampling, total = jpeg_coefficients._model_layout(scan)
    state, out = rangecoder.new_encoder(total * 3 + 1024)
    cost = np.zeros(16)
    jpeg_model._run(scan.values, offsets, rows, cols, sampling, jpeg_model._quant(scan.quant),
                    (*model, state, out, cost, False))
    return float(cost.sum() / 8)


def warm_start(jpegs: dict[str, bytes]) -> list[dict]:
    rows = []
    for first, second in WARM_PAIRS:
        a, b = jpeg_scan.split(jpegs[first]), jpeg_scan.split(jpegs[second])
        alone = _bits(b, jpeg_model.new_model())
        model = jpeg_model.new_model()
        _bits(a, model)
        after = _bits(b, model)
        rows.append({"file": second, "after": first, "alone_bytes": alone, "after_bytes": after,
                     "gain": 1 - after / alone})
    return rows


def paq8px(program: Path, jpegs: dict[str, bytes], ours: dict[str, int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in PAQ8PX_FILES:
            source, packed, back = Path(folder, name), Path(folder, name + ".paq8px"), Path(folder, "back")
            source.write_bytes(jpegs[name])
            start = time.perf_counter()
            subprocess.run([str(program), "-8", str(source), str(packed)], check=True, capture_output=True)
            seconds = time.perf_counter() - start
            subprocess.run([str(program), "-d", str(packed), str(back)], check=True, capture_output=True)
            assert back.read_bytes() == jpegs[name], name
            size = packed.stat().st_size
            rows.append({"file": name, "paq8px_bytes": size, "pixlm_bytes": ours[name], "encode_s": seconds,
                         "paq8px_vs_pixlm": size / ours[name] - 1})
    return rows


def files(photos: Path) -> dict[str, bytes]:
    out = {}
    for i, path in enumerate(sorted(photos.glob("*.png"))[40:49]):
        image = Image.open(path).convert("RGB")
        for name, options in ((KINDS[1], KINDS[3], KINDS[0]) if i < 3 else (KINDS[i % len(KINDS)],)):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", **options)
            out[f"{path.stem}-{name}.jpg"] = buffer.getvalue()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--paq8px", type=Path, default=None, help="a paq8px binary (../shared/tools/paq8px)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    jpeg_coefficients.decompress(jpeg_coefficients.compress(files(args.photos)["049-q75-420.jpg"]), 10**6)  # compile
    rows, totals = [], {"file": 0, "pixlm": 0, "lepton": 0}
    kinds = np.zeros(16)
    for name, data in files(args.photos).items():
        try:
            scan = jpeg_scan.split(data)
        except jpeg_scan.Unsupported as err:
            rows.append({"file": name, "bytes": len(data), "pixlm": None, "why": str(err)})
            continue
        start = time.perf_counter()
        part = jpeg_coefficients.compress(data)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        assert jpeg_coefficients.decompress(part, len(data)) == data, name
        decode = time.perf_counter() - start
        layout = jpeg_coefficients._model_layout(scan)
        _, cost = jpeg_model.encode(scan.values, *layout[:4], scan.quant)
        kinds += cost
        lepton = len(jpeg._encode(jpeg.LEPTON, data))
        rows.append({"file": name, "bytes": len(data), "pixlm": len(part), "lepton_one_partition": lepton,
                     "pixlm_vs_lepton": len(part) / lepton - 1, "encode_s": encode, "decode_s": decode})
        totals["file"] += len(data)
        totals["pixlm"] += len(part)
        totals["lepton"] += lepton
    summary = {"baseline_files": sum(r["pixlm"] is not None for r in rows), **totals,
               "pixlm_vs_lepton": totals["pixlm"] / totals["lepton"] - 1,
               "pixlm_vs_files": totals["pixlm"] / totals["file"] - 1,
               "lepton_vs_files": totals["lepton"] / totals["file"] - 1,
               "model_bytes_by_decision": {n: round(kinds[i] / 8) for i, n in enumerate(KIND_NAMES)}}
    jpegs = files(args.photos)
    result = {"made_by": "python -m benchmarks.studies.jpeg_model_study", "summary": summary, "files": rows,
              "warm_start": warm_start(jpegs)}
    if args.paq8px:
        result["paq8px"] = paq8px(args.paq8px, jpegs, {r["file"]: r["pixlm"] for r in rows if r["pixlm"]})
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))


if __name__ == "__main__":
    main()

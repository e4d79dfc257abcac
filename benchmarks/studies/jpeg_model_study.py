"""pixlm's JPEG coefficient model (trainer/engine/jpeg_model.py) against Lepton as one partition, on
the JPEG files the model was developed on: photos 041-049 of the shared photos (never in the JPEG
bench set, which takes the first 40), saved by Pillow in the bench set's kinds (041-043 as 4:2:0 q90,
4:4:4 q90 and 4:2:0 q75 each, the others one kind each, in turn). Per file: the sizes, the model's
bits by decision kind, its seconds (one thread). Progressive files are listed, not coded (the model
takes baseline files only).

    python -m benchmarks.studies.jpeg_model_study --photos ../shared/data/photos \
        --out benchmarks/results/jpeg_model_study.json
"""

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.jpeg_set import KINDS
from trainer.codec import jpeg, jpeg_coefficients, jpeg_scan
from trainer.engine import jpeg_model

KIND_NAMES = ("counts", "zero", "bit length", "lower bits", "sign")


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
    args.out.write_text(json.dumps({"made_by": "python -m benchmarks.studies.jpeg_model_study", "summary": summary,
                                    "files": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""One bundle's Kodak run against earlier runs of other bundles, on the images the run has finished:
bpsp (total bits / total subpixels), mean encode and decode seconds, exact decodes, and JPEG-XL e9
from each run (each run's own baseline, measured beside it).

    python benchmarks/studies/compare_kodak_runs.py --run benchmarks/results/kodak --codec pixlm-context-v5 \
        --against benchmarks/kodak:pixlm-context-v3 benchmarks/kodak_v4:pixlm-context-v4 > benchmarks/results/kodak/vs_v3_v4.json
"""

import argparse
import json
from pathlib import Path

REFERENCE = "jpegxl-e9"


def load(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]


def summary(rows: list[dict], codec: str, images: list[str]) -> dict:
    sel = [r for r in rows if r["codec"] == codec and r["image"] in images and r.get("ok")]
    if not sel:
        return {"n": 0}
    subpixels, size = sum(r["subpixels"] for r in sel), sum(r["bytes"] for r in sel)
    enc, dec = sum(r["encode_seconds"] for r in sel), sum(r["decode_seconds"] for r in sel)
    return {"n": len(sel), "bpsp": round(8 * size / subpixels, 4), "enc_s": round(enc / len(sel), 1),
            "dec_s": round(dec / len(sel), 1), "max_dec_s": round(max(r["decode_seconds"] for r in sel), 1),
            "enc_sps": round(subpixels / enc), "dec_sps": round(subpixels / dec),
            "exact": sum(1 for r in sel if r.get("decodes_exact", 0) >= 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a bench --out folder (results.jsonl)")
    ap.add_argument("--codec", required=True, help="the bundle's name in that run")
    ap.add_argument("--against", nargs="*", default=[], help="RUN:CODEC of earlier runs")
    args = ap.parse_args()
    rows = load(args.run)
    images = [r["image"] for r in rows if r["codec"] == args.codec and r.get("ok")]
    out = {"images": len(images), args.codec: summary(rows, args.codec, images),
           REFERENCE: summary(rows, REFERENCE, images)}
    jxl = {r["image"]: r["bpsp"] for r in rows if r["codec"] == REFERENCE and r.get("ok")}
    out["below_" + REFERENCE] = sum(1 for r in rows if r["codec"] == args.codec and r.get("ok")
                                    and r["image"] in jxl and r["bpsp"] < jxl[r["image"]])
    for spec in args.against:
        run, codec = spec.rsplit(":", 1)
        earlier = load(Path(run))
        out[f"{codec} ({run})"] = summary(earlier, codec, images)
        out[f"{REFERENCE} ({run})"] = summary(earlier, REFERENCE, images)
        other = out[f"{codec} ({run})"]
        if other.get("n") == len(images):
            out[f"{args.codec} vs {codec}, percent"] = round(100 * (out[args.codec]["bpsp"] / other["bpsp"] - 1), 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

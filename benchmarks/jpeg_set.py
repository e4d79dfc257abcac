"""Write a JPEG test set from the shared photos, the same files on every run (issue 34, item 1).

Each photo (sorted, the first `--count`) is saved by Pillow (libjpeg-turbo) as one JPEG file, the
photos taking the eight kinds in turn, so each kind holds every eighth photo:

    q75-420, q90-420, q95-420            baseline 4:2:0 at three qualities (Pillow's default tables)
    q90-444, q95-444, q90-422            baseline 4:4:4 and 4:2:2
    q90-420-progressive                  progressive 4:2:0
    q85-444-progressive-optimized        progressive 4:4:4, optimized Huffman tables

The files are named `<photo>-<kind>.jpg`; `manifest.json` beside them records each file's source,
options, size and sha256, and the Pillow / libjpeg versions that made them (another libjpeg may
write other bytes). With `--bench REPORT_DIR` the script then runs `pixlm bench --files` on the set:
pixlm's JPEG mode (the given bundle: any bundle codes a JPEG file the same way) against Lepton and
JPEG-XL's JPEG transcoding, every file restored and compared byte for byte; the manifest is copied
beside the report as `jpeg_set.json`.

    python benchmarks/jpeg_set.py --out /tmp/jpeg-set --bench benchmarks/results/jpeg
"""

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = (
    ("q75-420", {"quality": 75, "subsampling": 2}),
    ("q90-420", {"quality": 90, "subsampling": 2}),
    ("q95-420", {"quality": 95, "subsampling": 2}),
    ("q90-444", {"quality": 90, "subsampling": 0}),
    ("q95-444", {"quality": 95, "subsampling": 0}),
    ("q90-422", {"quality": 90, "subsampling": 1}),
    ("q90-420-progressive", {"quality": 90, "subsampling": 2, "progressive": True}),
    ("q85-444-progressive-optimized", {"quality": 85, "subsampling": 0, "progressive": True, "optimize": True}),
)


def make_set(photos: Path, out: Path, count: int) -> list[dict]:
    """Write the set into `out` (made if missing; files of an earlier set are replaced); its manifest."""
    from PIL import Image, features

    sources = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff", ".ppm"))[:count]
    if len(sources) < count:
        raise SystemExit(f"{photos}: {len(sources)} photos, {count} asked for")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    files = []
    for i, source in enumerate(sources):
        kind, options = KINDS[i % len(KINDS)]
        buffer = io.BytesIO()
        with Image.open(source) as image:
            image.convert("RGB").save(buffer, "JPEG", **options)
        data = buffer.getvalue()
        name = f"{source.stem}-{kind}.jpg"
        (out / name).write_bytes(data)
        files.append({"file": name, "source": source.name, "kind": kind, "options": options, "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"made_by": "benchmarks/jpeg_set.py", "pillow": Image.__version__,
                "libjpeg_turbo": features.version("libjpeg_turbo"), "photos": str(photos), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "photos")
    parser.add_argument("--out", type=Path, required=True, help="folder the JPEG files are written to")
    parser.add_argument("--count", type=int, default=40, help="photos used (default 40: five of each kind)")
    parser.add_argument("--bench", type=Path, default=None, metavar="REPORT_DIR",
                        help="then run pixlm bench --files on the set into REPORT_DIR")
    parser.add_argument("--bundle", type=Path, default=REPO / "checkpoints" / "pixlm-online-max")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    files = make_set(args.photos, args.out, args.count)
    total = sum(f["bytes"] for f in files)
    print(f"{len(files)} JPEG files, {total:,} bytes -> {args.out}")
    if args.bench is None:
        return 0
    from trainer.cli import main as pixlm

    code = pixlm(["bench", "--files", "--data", str(args.out), "--bundle", str(args.bundle),
                  "--baselines", "lepton,jpegxl-jpeg", "--threads", str(args.threads), "--out", str(args.bench),
                  "--quiet"])
    if code == 0:  # which files were measured: the set's manifest beside the report
        (args.bench / "jpeg_set.json").write_text((args.out / "manifest.json").read_text())
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Rewrite the README's benchmark table from a `pixlm bench` report.

    python benchmarks/make_readme_table.py                       # benchmarks/results/kodak/report.json (the default bundle's) -> README.md
    python benchmarks/make_readme_table.py --report R.json --readme README.md [--check]
    python benchmarks/make_readme_table.py --also benchmarks/results/kodak/pixlm-context-v5-2026-11-27.json:pixlm-context-v5

Only the text between the markers `<!-- bench:start -->` and `<!-- bench:end -->` changes. --check
exits 1 (changing nothing) when the README is not up to date with the report.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from trainer.bench.report import format_speed

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def table(report: dict, also: list[tuple[dict, str]] = ()) -> str:
    """The report's table; `also`: (another report, codec) rows added from an earlier run, marked
    with that run's date and CPU (its speeds are that run's, measured against its own JPEG-XL)."""
    if report.get("schema_version") != 1:
        raise SystemExit(f"report schema_version {report.get('schema_version')!r}: this script reads version 1")
    cfg, ref, machine = report["config"], report["reference_codec"], report["machine"]
    lines = []
    for s in report["sets"]:
        lines += [f"**{s['name']}**: {s['images_done']}/{s['images']} images"
                  + (f", center crop {cfg['crop']}" if cfg.get("crop") else "")
                  + f"; {machine['cpu']} ({machine.get('cpu_capability', 'CPU kernel level not recorded')}), {cfg['threads']} thread(s) per codec, {cfg['world_size']} process(es); "
                  f"{report['created'][:10]}.", "",
                  f"| codec | bpsp | encode subpixels/s | decode subpixels/s | decode speed vs {ref} | exact decodes |",
                  "| --- | --- | --- | --- | --- | --- |"]
        codecs = dict(s["codecs"])
        for other, name in also:
            theirs = next(o for o in other["sets"] if o["name"] == s["name"])["codecs"][name]
            m = other["machine"]
            codecs[f"{name} (run of {other['created'][:10]}, {m.get('cpu_capability', '?')})"] = theirs
        rows = sorted(codecs.items(), key=lambda kv: (kv[1]["bpsp"] is None, kv[1]["bpsp"] or 0))
        for name, t in rows:
            bpsp = "failed" if t["bpsp"] is None else f"{t['bpsp']:.3f}"
            if t["bpsp"] is not None and t["images_ok"] < t["images_tried"]:
                bpsp += f" ({t['images_ok']}/{t['images_tried']} images)"
            ratio = "–" if t.get("decode_speed_vs_ref") is None else f"{t['decode_speed_vs_ref']:.3g}x"
            lines.append(f"| {name} | {bpsp} | {format_speed(t['encode_subpixels_per_s'])} "
                         f"| {format_speed(t['decode_subpixels_per_s'])} | {ratio} "
                         f"| {t['decodes_exact']}/{t['decodes_tried']} |")
        lines.append("")
    lines.append("bpsp = 8 x file bytes / subpixels over the whole set (every byte of every file).")
    return "\n".join(lines)


def rewrite(readme_text: str, new_table: str) -> str:
    start, end = readme_text.find(START), readme_text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README has no {START} ... {END} markers")
    return readme_text[:start + len(START)] + "\n" + new_table + "\n" + readme_text[end:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "results" / "kodak" / "report.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README table is out of date")
    parser.add_argument("--also", nargs="*", default=[], metavar="REPORT.json:CODEC",
                        help="a codec's row from an earlier run (marked with its date and CPU level)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report}: no such report (run pixlm bench --out {args.report.parent} first)",
              file=sys.stderr)
        return 2
    text = args.readme.read_text()
    also = [(json.loads(Path(path).read_text()), name) for path, name in (item.rsplit(":", 1) for item in args.also)]
    new = rewrite(text, table(json.loads(args.report.read_text()), also))
    if args.check:
        return 0 if new == text else 1
    args.readme.write_text(new)
    print(f"{args.readme}: benchmark table rewritten from {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

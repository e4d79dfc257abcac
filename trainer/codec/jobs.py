"""Which files `pixlm encode` / `pixlm decode` read and write, decided and checked before any work.

The habits of cjxl, zstd and gzip: an existing output is never replaced without --force; the input
is never its own output; a folder is mirrored into a folder (subfolders included) and two inputs
that would share an output name are refused up front; an output folder is created, an output file's
folder must exist. `-` reads the input from stdin or writes the output to stdout. Every problem
found here is reported before a model loads.
"""

from pathlib import Path
from trainer.errors import PixlmError

STD = Path("-")  # stdin as an input, stdout as an output
STREAM_SUFFIX = ".pxl"
IMAGE_OUT_SUFFIX = ".png"  # decoded images: PNG, unless the stream holds a TIFF or PNM (version 4) or a file (5)
# a decoded file's format -> suffixes its output may have (the first is the default)
OUT_SUFFIXES = {"png": (".png",), "tiff": (".tif", ".tiff"), "pgm": (".pgm", ".pnm"), "ppm": (".ppm", ".pnm")}


class JobError(PixlmError):
    """Inputs or outputs that cannot be used as given."""


def _is_folder_target(path: Path) -> bool:
    return path.is_dir() or str(path).endswith(("/", "\\"))


def decoded_as(stream: Path) -> tuple[str, tuple[str, ...]]:
    """(file format, the suffixes its output may have, the first the default) of what a stream decodes
    to: png, tiff, pgm or ppm, or a kept file's own format and suffixes (version 5: `.jpg` for a
    JPEG); png for any file it cannot tell (decoding it then says what is wrong)."""
    from trainer.codec import keep
    from trainer.codec.envelope import is_envelope, unpack

    try:
        with open(stream, "rb") as f:
            head = f.read(5)
            if not is_envelope(head + b"\0"):
                return "png", OUT_SUFFIXES["png"]
            f.seek(0)
            env = unpack(f.read())
        if keep.is_kept(head + b"\0"):
            facts = keep.facts(env)
            return facts["format"], tuple(facts["suffixes"])
        import json

        fmt = json.loads(env.entries[0][1])
        kind = ("pgm" if fmt["layout"] == "L" else "ppm") if fmt["format"] == "pnm" else fmt["format"]
        kind = kind if kind in OUT_SUFFIXES else "png"
        return kind, OUT_SUFFIXES[kind]
    except Exception:  # noqa: BLE001 - the decoder reports a bad stream with its reason
        return "png", OUT_SUFFIXES["png"]


def decoded_format(stream: Path) -> str:
    """The file format a stream decodes to (decoded_as)."""
    return decoded_as(stream)[0]


def plan(command: str, source: Path, out: Path, force: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs of an encode or decode; JobError if any of them cannot be done."""
    from trainer.images.files import image_files

    def suffix(path: Path) -> str:
        return STREAM_SUFFIX if command == "encode" else decoded_as(path)[1][0]

    if out == STD and source.is_dir():
        raise JobError("a folder cannot be written to stdout; name an output folder")
    if source == STD or out == STD:
        if out != STD and (_is_folder_target(out) or not out.parent.is_dir()):
            raise JobError(f"{out}: with input from stdin, name an output file in an existing folder")
        if out != STD and out.exists() and not force:
            raise JobError(f"{out} exists; use -f/--force to overwrite")
        if source != STD and not source.is_file():
            raise JobError(f"{source}: no such file")
        return [(source, out)]
    if source.is_dir():
        inputs = image_files(source) if command == "encode" else sorted(p for p in source.rglob(f"*{STREAM_SUFFIX}") if p.is_file())
        if not inputs:
            raise JobError(f"{source} holds no {'images' if command == 'encode' else '.pxl files'}")
        if out.exists() and not out.is_dir():
            raise JobError(f"{out} is a file; a folder input needs an output folder")
        pairs = [(p, out / p.relative_to(source).with_suffix(suffix(p))) for p in inputs]
    elif source.is_file():
        if _is_folder_target(out):
            target = out / source.with_suffix(suffix(source)).name
        else:
            target = out
            if command == "decode":
                kind, allowed = decoded_as(source)
                if out.suffix.lower() not in {s.lower() for s in allowed}:
                    raise JobError(f"{out}: {source} decodes to {kind.upper()}; name the output "
                                   + " or ".join(dict.fromkeys(s.lower() for s in allowed)))
            if not out.parent.is_dir():
                raise JobError(f"{out.parent}: no such folder")
        pairs = [(source, target)]
    else:
        raise JobError(f"{source}: no such file or folder")
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise JobError(f"{src}: the output would replace the input")
        if dst in seen:
            raise JobError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
        if dst.is_dir():
            raise JobError(f"{dst} is a folder")
        if dst.exists() and not force:
            raise JobError(f"{dst} exists; use -f/--force to overwrite")
    return pairs

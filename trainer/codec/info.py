"""What a .pxl stream holds, read from its headers alone (`pixlm info`, `api.info`): no model is
loaded and no payload decoded, like `jxlinfo`. Every header and its CRCs are checked."""

import json
from pathlib import Path

from trainer.codec import envelope, keep
from trainer.codec.bundle import RETIRED, bundle_folder
from trainer.codec.container import unpack
from trainer.codec.jpeg import LIBRARIES as JPEG_LIBRARIES, SAID_BY_NAME
from trainer.codec.kinds import kind_of
from trainer.engine.settings import choice_facts

MODE_NAMES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _bundle_of(bundle_id: bytes) -> dict:
    """The known bundle a stream names: its folder and name (manifests only, nothing loaded)."""
    prefix = bundle_id.hex()
    if prefix[:16] in RETIRED:
        name, release = RETIRED[prefix[:16]]
        return {"bundle": None, "bundle_name": name, "bundle_note": f"retired; pixlm {release} decodes it"}
    folder = bundle_folder(bundle_id)
    if folder is not None:
        return {"bundle": str(folder), "bundle_name": folder.name, "bundle_kind": kind_of(folder).name}
    return {"bundle": None, "bundle_name": None, "bundle_note": "not in the bundle search path"}


def stream_info(data: bytes) -> dict:
    """A dict of the stream's facts; FormatError (one line) for anything that is not a valid header."""
    if keep.is_kept(data):
        env = envelope.unpack(data)
        kept = keep.facts(env)
        out = {"format_version": data[4], "bundle_id_bytes": env.bundle_id, "representation": envelope.NAMES[env.representation],
               "numeric_mode": None, "width": env.width, "height": env.height, "channels": env.channels,
               "mode": "CMYK" if env.channels == 4 and kept["format"] in ("jpeg", "mpo") else MODE_NAMES.get(env.channels, "?"),
               "depth": env.depth, "file_format": kept["format"],
               "layout": None, "metadata": [], "payload_bytes": len(env.parts[0]), "precision": None,
               "kept_file": kept}
        model_payload = b""
    elif envelope.is_envelope(data):
        env = envelope.unpack(data)
        entries = dict(env.entries)
        fmt = json.loads(entries.get(b"FMT ", b"{}") or b"{}")
        inner, model_payload = unpack(env.parts[0]) if env.representation != envelope.JXL else (None, b"")
        out = {"format_version": data[4], "bundle_id_bytes": env.bundle_id,
               "representation": envelope.NAMES[env.representation],
               "numeric_mode": inner.numeric_mode if inner else "jpegxl-lossless",
               "width": env.width, "height": env.height, "channels": env.channels,
               "mode": MODE_NAMES.get(env.channels, "?"), "depth": env.depth,
               "file_format": fmt.get("format"), "layout": fmt.get("layout"),
               "metadata": sorted({tag.decode("latin-1").strip() for tag, _ in env.entries[1:]}
                                  - {"IHDR", "IDAT", "IEND"}),
               "payload_bytes": sum(len(p) for p in env.parts), "precision": inner.precision if inner else None}
    else:
        header, model_payload = unpack(data)
        out = {"format_version": data[4], "bundle_id_bytes": header.bundle_id,
               "representation": "fallback" if data[4] == 3 else "model", "numeric_mode": header.numeric_mode,
               "width": header.width, "height": header.height, "channels": header.channels,
               "mode": header.mode, "depth": 8,
               "file_format": "png", "layout": header.mode, "metadata": [], "payload_bytes": len(model_payload),
               "precision": header.precision}
    # version 5: format, suffixes, size, representation (file, jpeg) and coder of the file kept whole or recoded
    out.setdefault("kept_file", None)
    # the online engine's choices for this image: its payload's first byte
    out["engine_choices"] = choice_facts(model_payload[0], out["channels"]) if out["numeric_mode"] == "online-v1" and model_payload else None
    subpixels = out["width"] * out["height"] * out["channels"]
    out |= {"bundle_id": out["bundle_id_bytes"].hex(), "file_bytes": len(data),
            "bpsp": 8 * len(data) / subpixels if subpixels else None, **_bundle_of(out["bundle_id_bytes"])}
    return out


def describe(path: Path, facts: dict) -> str:
    """`pixlm info`'s text: one fact a line."""
    name = facts["bundle_name"] or "unknown bundle"
    kept = facts.get("kept_file")
    if kept:
        recoded = kept.get("representation") == "jpeg"
        return "\n".join([
            f"{path}: pixlm stream, format version {facts['format_version']} "
            + (f"(jpeg: the input JPEG file recoded by {SAID_BY_NAME.get(kept['coder'], kept['coder'])}, "
               "restored byte for byte)" if recoded
               else "(file: the input file's own bytes)"),
            f"  image:     {facts['width']}x{facts['height']}, {facts['mode']}, {facts['depth']} bits per sample, "
            f"a {kept['format'].upper()} file written back as it was ({', '.join(kept['suffixes'])})",
            f"  bundle:    {name} (id {facts['bundle_id']}) wrote it; no model decodes it",
            (f"  jpeg:      {kept['size']:,} bytes, coded by {kept['coder']} ({JPEG_LIBRARIES[kept['coder']]})"
             + f", {100 * (1 - facts['file_bytes'] / max(kept['size'], 1)):.1f} % below the file; metadata as in the file"
             if recoded else f"  kept:      {kept['size']:,} bytes, {kept['coder']}; metadata as in the file"),
            f"  size:      {facts['file_bytes']:,} bytes (payload {facts['payload_bytes']:,}), "
            + (f"{facts['bpsp']:.4f} bits per subpixel" if facts["bpsp"] is not None else "")])
    lines = [f"{path}: pixlm stream, format version {facts['format_version']} ({facts['representation']})",
             f"  image:     {facts['width']}x{facts['height']}, {facts['mode']}, {facts['depth']} bits per sample"
             + (f", written back as {facts['file_format']}" if facts.get("file_format") else ""),
             f"  bundle:    {name} (id {facts['bundle_id']})" + (f", {facts['bundle_note']}" if facts.get("bundle_note")
                                                                 else ""),
             f"  numeric:   {facts['numeric_mode']}" + (f", precision {facts['precision']} bits" if facts['precision']
                                                        else ""),
             f"  metadata:  {', '.join(facts['metadata']) or 'none'}",
             *([f"  engine:    channels coded in {choice['channel_order'] or 'an unknown'} order, parity contexts "
                f"{'on' if choice['parity_contexts'] else 'off'}, {'least squares' if choice['least_squares'] else 'LMS'}"]
               if (choice := facts.get("engine_choices")) else []),
             f"  size:      {facts['file_bytes']:,} bytes (payload {facts['payload_bytes']:,}), "
             + (f"{facts['bpsp']:.4f} bits per subpixel" if facts["bpsp"] is not None else "")]
    return "\n".join(lines)

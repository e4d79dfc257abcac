"""Archives beyond one machine: `pixlm encode|decode SRC DST --ray [ADDRESS]` codes every file as
a Ray task (the optional extra `ray`: `pip install "pixlm[ray]"`).

Each task writes its output whole (a temporary name, then a rename: trainer.images.files.
write_file), so a killed run leaves only complete outputs. An output that already exists is
checked first: if it decodes to exactly its source (encode) or holds exactly the stream's
samples (decode), the task skips it, so running the same command again resumes a stopped run;
an existing output that does not verify is replaced only with --force. The driver prints a line
per file as tasks finish and a summary: files coded, skipped, failed; bytes and bpsp.
"""

import os
import sys
from pathlib import Path

import numpy as np

from trainer.errors import PixlmError


def _exact(command: str, src: Path, dst: Path, bundle: str | None) -> bool:
    from trainer import api
    from trainer.codec import envelope, keep
    from trainer.images.picture import read_picture

    try:
        stream, other = (dst, src) if command == "encode" else (src, dst)
        data = stream.read_bytes()
        if keep.is_kept(data):  # version 5 (a JPEG recoded, a file kept whole): the file itself, byte for byte
            return keep.file_bytes(envelope.unpack(data)) == other.read_bytes()
        if command == "encode":
            return bool(np.array_equal(api.decode(dst.read_bytes(), bundle, threads=1), read_picture(src).samples))
        return bool(np.array_equal(read_picture(dst).samples, api.decode(src.read_bytes(), bundle, threads=1)))
    except (OSError, PixlmError):
        return False


def code_one(command: str, src: str, dst: str, bundle: str | None, strip: bool, force: bool) -> dict:
    """One file, as a task: {"src", "status": coded | skipped | failed, "bytes", "subpixels", "error"}."""
    from trainer import api
    from trainer.codec.info import stream_info

    src_path, dst_path = Path(src), Path(dst)
    record = {"src": src, "dst": dst}
    try:
        if dst_path.exists():
            if _exact(command, src_path, dst_path, bundle):
                stream = dst_path if command == "encode" else src_path
                facts = stream_info(stream.read_bytes())
                return record | {"status": "skipped", "bytes": facts["file_bytes"],
                                 "subpixels": facts["width"] * facts["height"] * facts["channels"]}
            if not force:
                raise PixlmError(f"{dst} exists and does not verify against {src}; --force replaces it")
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        if command == "encode":
            report = api.encode_file(src_path, dst_path, bundle, strip=strip, threads=1, force=True)
        else:
            report = api.decode_file(src_path, dst_path, bundle, threads=1, force=True)
        return record | {"status": "coded", "bytes": report.file_bytes,
                         "subpixels": report.width * report.height * report.channels}
    except PixlmError as err:
        return record | {"status": "failed", "error": str(err)}


def run(args, pairs: list[tuple[Path, Path]]) -> int:
    """Code every pair on Ray; exit code 2 if any failed (or, without --keep-going, stop at the first)."""
    try:
        import ray
    except ImportError:
        raise PixlmError("--ray needs Ray: pip install 'pixlm[ray]' (or ray), or use --jobs N on this machine") from None
    local = args.ray == "local"
    ray.init(address=None if local else args.ray, num_cpus=os.cpu_count() if local else None,
             include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env=None if local else {"env_vars": {"HF_HUB_OFFLINE": "1"}})
    bundle = str(args.bundle) if args.bundle else None
    task = ray.remote(num_cpus=1, max_retries=2)(code_one)
    pending = [task.remote(args.command, str(src), str(dst), bundle, getattr(args, "strip", False), args.force)
               for src, dst in pairs]
    counts, total_bytes, total_subpixels, failed = {"coded": 0, "skipped": 0, "failed": 0}, 0, 0, []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                record = ray.get(done[0])
            except ray.exceptions.RayError as err:  # a worker that died past its retries
                record = {"src": "?", "status": "failed", "error": str(err).splitlines()[0]}
            counts[record["status"]] += 1
            if record["status"] == "failed":
                failed.append(record["src"])
                print(f"pixlm: error: {record['src']}: {record['error']}", file=sys.stderr, flush=True)
                if not args.keep_going:
                    for ref in pending:
                        ray.cancel(ref)
                    return 2
                continue
            total_bytes += record["bytes"]
            total_subpixels += record["subpixels"]
            print(f"{record['dst']}: {record['status']}, {record['bytes']:,} bytes, "
                  f"{8 * record['bytes'] / record['subpixels']:.4f} bpsp", flush=True)
    finally:
        ray.shutdown()
    bpsp = f", {8 * total_bytes / total_subpixels:.4f} bpsp" if total_subpixels else ""
    print(f"ray: {len(pairs)} files: {counts['coded']} coded, {counts['skipped']} skipped (already exact), "
          f"{counts['failed']} failed; {total_bytes:,} bytes of streams{bpsp}", flush=True)
    return 2 if failed else 0

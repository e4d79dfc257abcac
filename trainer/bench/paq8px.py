"""paq8px as a `pixlm bench` baseline: the strongest open lossless image coder, run as its own program.

paq8px (GPL; `../shared/tools/paq8px/build.sh` builds v216 from its unmodified source) is not a
library: for each image the baseline writes the samples as a binary PGM (P5, gray), PPM (P6, RGB) or
PAM (P7, RGBA) into a private temporary folder, runs `paq8px -LEVEL image.pnm image.paq` (single-file
mode: the archive holds paq8px's 8-byte header and the content, no file name), then
`paq8px -d image.paq back.pnm`, and reads the decoded file back into an array, which the bench
compares with the original like every other baseline's. bpsp = 8 x the archive's bytes / subpixels.
Names: `paq8px` (level 8, as its users run it and as issue 32 measured it) and `paq8px-N` (level N,
1..12; the level sets its memory: 2.4 GB at 8, 4.3 GB at 9, 29 GB at 12).

What paq8px codes with its image models (its PNM detector, src/filter/Filters.hpp): P5 / P6 with
maxval <= 255 and P7 with DEPTH 1, 3 or 4 (its 8-bit gray, 24-bit and 32-bit models). It rejects a
maxval above 255 and a PAM of depth 2, so 16-bit samples and gray+alpha would be coded as generic
binary data; the baseline refuses those images with a one-line reason (that image's failure, as
WebP refuses 16-bit samples) rather than measure paq8px at what it was not built for.

The program: `--paq8px PATH`, else $PIXLM_PAQ8PX, else `paq8px` on PATH (`find_binary`).
paq8px exits 0 even when it gives up (its quit() returns normally), so success is judged by the
files it leaves, and a decode by the pixels. Its memory is a child process's: the peak resident set
of each run (os.wait4's ru_maxrss) is kept in `child_peak_mb` for the bench's memory columns. Timings
include writing the PNM file, starting the program and reading its output (milliseconds against
paq8px's minutes).
"""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

NAME = "paq8px"
DEFAULT_LEVEL = 8
LEVELS = range(1, 13)
ENV = "PIXLM_PAQ8PX"
BUILD_HINT = "../shared/tools/paq8px/build.sh builds one"
NAME_PATTERN = re.compile(rf"{NAME}(?:-(\d+))?")


class Paq8pxError(RuntimeError):
    """paq8px refused an image, failed, or left no output (one line: what and why)."""


def level_of(name: str) -> int | None:
    """'paq8px' -> 8, 'paq8px-4' -> 4; None for any other name (or a level paq8px does not have)."""
    match = NAME_PATTERN.fullmatch(name)
    if not match:
        return None
    level = int(match[1]) if match[1] else DEFAULT_LEVEL
    return level if level in LEVELS else None


def find_binary(given: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(the program, where it came from): `given` (--paq8px), else $PIXLM_PAQ8PX, else `paq8px` on PATH.

    A path named by the option or the variable that is not an executable file is a ValueError (a
    mistyped path should stop the run, not quietly drop the reference); nothing named and nothing on
    PATH is (None, reason) and the bench skips paq8px with that one line.
    """
    for source, value in (("--paq8px", given), (ENV, os.environ.get(ENV))):
        if value:
            path = Path(value).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ValueError(f"{source} {value}: not an executable file ({BUILD_HINT} and prints its path)")
            return path.resolve(), source
    on_path = shutil.which(NAME)
    if on_path:
        return Path(on_path).resolve(), "PATH"
    return None, f"{NAME}: no binary (give --paq8px PATH or set {ENV}; {BUILD_HINT}); skipped"


def version_of(binary: Path) -> str | None:
    """'v216' from the banner paq8px prints when run without arguments (None if it prints none)."""
    try:
        done = subprocess.run([str(binary)], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(rb"paq8px[^\n]*?\sv(\d+\w*)", done.stdout + done.stderr, re.I)
    return "v" + match[1].decode() if match else None


# -- PGM / PPM / PAM ---------------------------------------------------------------------------------
def to_pnm(array: np.ndarray) -> bytes:
    """The image as the binary Netpbm file paq8px's detector takes as an image (header exactly as it
    parses it: 'P6\\nW H\\n255\\n'); Paq8pxError for what it has no image model for."""
    height, width, channels = array.shape
    if array.dtype != np.uint8:
        raise Paq8pxError(f"paq8px's image models take 8-bit samples only (its PNM detector rejects maxval > 255); "
                          f"this image has {8 * array.dtype.itemsize}-bit samples: skipped")
    if channels == 1:
        header = f"P5\n{width} {height}\n255\n"
    elif channels == 3:
        header = f"P6\n{width} {height}\n255\n"
    elif channels == 4:
        header = f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n"
    else:
        raise Paq8pxError(f"paq8px has no image model for {channels} channels (gray+alpha: its PNM detector "
                          "takes gray, RGB and RGBA only): skipped")
    return header.encode("ascii") + np.ascontiguousarray(array).tobytes()


def from_pnm(data: bytes) -> np.ndarray:
    """(H, W, C) uint8 samples of a binary P5 / P6 / P7 file with maxval 255; Paq8pxError otherwise."""
    match = re.match(rb"P([56])\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if match:
        channels, width, height, maxval = (1 if match[1] == b"5" else 3), int(match[2]), int(match[3]), int(match[4])
        start = match.end()
    elif data.startswith(b"P7\n") and b"\nENDHDR\n" in data[:512]:
        start = data.index(b"\nENDHDR\n") + 8
        fields = dict(re.findall(rb"^(WIDTH|HEIGHT|DEPTH|MAXVAL) (\d+)$", data[:start], re.M))
        try:
            width, height, channels, maxval = (int(fields[k]) for k in (b"WIDTH", b"HEIGHT", b"DEPTH", b"MAXVAL"))
        except KeyError:
            raise Paq8pxError("the decoded PAM file lacks WIDTH, HEIGHT, DEPTH or MAXVAL") from None
    else:
        raise Paq8pxError(f"the decoded file is not a binary PGM/PPM/PAM (starts {data[:16]!r})")
    size = width * height * channels
    if maxval != 255 or len(data) - start != size:
        raise Paq8pxError(f"the decoded file holds {len(data) - start} sample bytes with maxval {maxval}, "
                          f"not {size} with maxval 255 ({width}x{height}x{channels})")
    return np.frombuffer(data, np.uint8, size, start).reshape(height, width, channels)


# -- the baseline ------------------------------------------------------------------------------------
class Paq8px:
    """One paq8px level as a bench baseline (the interface of baselines.BaselineCodec)."""

    threaded = False  # paq8px codes on one core

    def __init__(self, binary: Path, level: int = DEFAULT_LEVEL, name: str | None = None,
                 version: str | None = None):
        self.binary, self.level, self.version = Path(binary), level, version
        self.name = name or (NAME if level == DEFAULT_LEVEL else f"{NAME}-{level}")
        self.description = (f"paq8px {version or '(version unknown)'} -{level}, one core, "
                             f"through binary PGM/PPM/PAM ({self.binary})")
        self.child_peak_mb: float | None = None  # the last run's peak RSS, MB (10^6 bytes)

    def _run(self, args: list[str], folder: Path) -> str:
        """Run paq8px in `folder`; its output's last line. Exits other than 0 (a crash, a kill) raise."""
        self.child_peak_mb = None
        log = folder / "paq8px.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(self.binary), *args], cwd=folder, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            try:
                if hasattr(os, "wait4"):
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    self.child_peak_mb = round(usage.ru_maxrss * 1024 / 1e6, 1)  # kB on Linux
                else:
                    proc.wait()
            except BaseException:  # interrupted: never leave a 3 GB child behind
                proc.kill()
                proc.wait()
                raise
        lines = [x.strip() for x in re.split(r"[\r\n]+", log.read_bytes().decode("utf-8", "replace")) if x.strip()]
        last = lines[-1] if lines else "(no output)"
        if proc.returncode != 0:
            killed = " (killed: out of memory?)" if proc.returncode == -9 else ""
            raise Paq8pxError(f"paq8px {' '.join(args[:1])} exited with {proc.returncode}{killed}: {last}")
        return last

    def encode(self, array: np.ndarray, threads: int = 1) -> bytes:
        pnm = to_pnm(array)
        with tempfile.TemporaryDirectory(prefix="pixlm-paq8px-") as tmp:
            folder = Path(tmp)
            (folder / "image.pnm").write_bytes(pnm)
            last = self._run([f"-{self.level}", "image.pnm", "image.paq"], folder)
            archive = folder / "image.paq"
            if not archive.is_file() or archive.stat().st_size == 0:
                raise Paq8pxError(f"paq8px -{self.level} wrote no archive: {last}")
            return archive.read_bytes()

    def decode(self, data: bytes, like: np.ndarray, threads: int = 1) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="pixlm-paq8px-") as tmp:
            folder = Path(tmp)
            (folder / "image.paq").write_bytes(data)
            last = self._run(["-d", "image.paq", "back.pnm"], folder)
            back = folder / "back.pnm"
            if not back.is_file():
                raise Paq8pxError(f"paq8px -d wrote no file: {last}")
            return from_pnm(back.read_bytes())


def make(name: str, given: str | os.PathLike | None = None) -> tuple[Paq8px | None, str | None]:
    """(the baseline, None), or (None, the one-line reason it is skipped: no program found)."""
    binary, source = find_binary(given)
    if binary is None:
        return None, source
    return Paq8px(binary, level_of(name), name, version_of(binary)), None

"""A validation set of another kind: photos as a video decoder would give them back.

Each photo's center crop goes through what a video pipeline does to it: RGB to 8-bit Y'CbCr
(BT.709, limited range), chroma averaged over 2x2 blocks (4:2:0), then a player's decode:
chroma upsampled by libjpeg's triangle filter (3/4 nearest, 1/4 the next, per axis), Y'CbCr to
RGB rounded and clamped. The result holds what such sources hold and the training photos do not:
colours on a rounded lattice, chroma that repeats every 2 pixels.

    python benchmarks/make_video_set.py ../shared/data/photos/{005,012,023,036}.png --crop 512x384 --out .cache/video

With `--ffmpeg PATH` the frames are made by ffmpeg itself instead (RGB to yuv420p and back to rgb24,
swscale's defaults): a real converter whose table-driven path rounds each term apart, so its
colours lie on no single rounded lattice (the static build of the `imageio-ffmpeg` wheel serves):

    python benchmarks/make_video_set.py ../shared/data/photos/{005,012,023,036}.png --crop 512x384 --ffmpeg FFMPEG --out .cache/ffmpeg
"""

import argparse
import subprocess
from pathlib import Path

import numpy as np

from trainer.images.files import center_crop, load_image, save_png

KR, KB = 0.2126, 0.0722  # BT.709


def to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    y = KR * r + (1 - KR - KB) * g + KB * b
    cb, cr = (b - y) / (2 * (1 - KB)), (r - y) / (2 * (1 - KR))
    return np.rint(np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], -1)).clip(0, 255).astype(np.int64)


def subsample(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    return (plane[:h:2, :w:2] + plane[1:h:2, :w:2] + plane[:h:2, 1:w:2] + plane[1:h:2, 1:w:2] + 2) // 4


def upsample(half: np.ndarray) -> np.ndarray:
    """The triangle filter, per axis: each output 3/4 its own sample, 1/4 the neighbour on its side."""
    def axis(a, ax):
        prev = np.concatenate([np.take(a, [0], ax), np.take(a, range(a.shape[ax] - 1), ax)], ax)
        nxt = np.concatenate([np.take(a, range(1, a.shape[ax]), ax), np.take(a, [-1], ax)], ax)
        even, odd = 3 * a + prev, 3 * a + nxt
        return np.stack([even, odd], ax + 1).reshape(*a.shape[:ax], 2 * a.shape[ax], *a.shape[ax + 1:])
    return (axis(axis(half, 0), 1) + 8) // 16


def to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    yy, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r = yy + 2 * (1 - KR) * pr
    b = yy + 2 * (1 - KB) * pb
    g = (yy - KR * r - KB * b) / (1 - KR - KB)
    return np.rint(np.stack([r, g, b], -1) * 255).clip(0, 255).astype(np.uint8)


def video_frame(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2, :3]
    ycc = to_ycbcr(rgb)
    return to_rgb(ycc[..., 0], upsample(subsample(ycc[..., 1])), upsample(subsample(ycc[..., 2])))


def ffmpeg_frame(rgb: np.ndarray, ffmpeg: str) -> np.ndarray:
    """The frame as ffmpeg gives it back after yuv420p (its defaults both ways)."""
    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2, :3])
    size = f"{rgb.shape[1]}x{rgb.shape[0]}"
    def run(data, src, dst):
        return subprocess.run([ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", src, "-s", size, "-i", "-",
                               "-f", "rawvideo", "-pix_fmt", dst, "-"], input=data, capture_output=True, check=True).stdout
    out = run(run(rgb.tobytes(), "rgb24", "yuv420p"), "yuv420p", "rgb24")
    return np.frombuffer(out, dtype=np.uint8).reshape(rgb.shape)


def arguments(description: str, with_ffmpeg: bool = False) -> tuple[argparse.Namespace, tuple[int, int] | None]:
    """IMAGES... [--crop WxH] --out PATH (this script's and the headroom study's), never Kodak."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--crop", default=None, help="WxH center crop")
    parser.add_argument("--out", type=Path, required=True)
    if with_ffmpeg:
        parser.add_argument("--ffmpeg", default=None, help="make the frames with this ffmpeg binary instead")
    args = parser.parse_args()
    if any("kodak" in str(p).lower() for p in args.images):
        raise SystemExit("never build validation data from Kodak, nor study on it")
    return args, (tuple(map(int, args.crop.split("x"))) if args.crop else None)


def main() -> None:
    args, crop = arguments(__doc__.split("\n")[0], with_ffmpeg=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        target = args.out / f"{path.stem}.png"
        if target.exists():
            raise SystemExit(f"{target} exists; remove it first")
        image = center_crop(load_image(path), crop)
        save_png(ffmpeg_frame(image, args.ffmpeg) if args.ffmpeg else video_frame(image), target)
        print(target)


if __name__ == "__main__":
    main()

"""How much a source's own colour transform would be worth on video-like frames: the engine (`max`,
channels as given) on each frame's R, G, B without and with the seen-colours model, and on the
decoder's planes the frame was made from (Y, Cb, Cr at full size; Y and the half-size chroma).

    python -m benchmarks.studies.video_headroom ../shared/data/photos/{005,012,023,036}.png \
        --crop 512x384 --out benchmarks/results/video_headroom.json

Bits per subpixel of the RGB frame, cumulative over the images.
"""

import json
from dataclasses import replace

import numpy as np

from benchmarks.make_video_set import arguments, subsample, to_ycbcr, upsample, video_frame
from trainer.engine import coder
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables
from trainer.images.files import center_crop, load_image


def main() -> None:
    args, crop = arguments(__doc__.split("\n")[0])
    tables = make_tables()
    off, on = replace(PRESETS["max"], seen=0, channel_order=0), replace(PRESETS["max"], channel_order=0)
    size = lambda image, settings: len(coder.encode(np.ascontiguousarray(image.astype(np.uint8)), settings, tables)[0])
    totals, subpixels = {"rgb": 0, "rgb_seen": 0, "ycc": 0, "ycc_half": 0}, 0
    for path in args.images:
        rgb = center_crop(load_image(path), crop)
        rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2, :3]
        ycc = to_ycbcr(rgb)
        cb, cr = subsample(ycc[..., 1]), subsample(ycc[..., 2])
        frame = video_frame(rgb)
        totals["rgb"] += size(frame, off)
        totals["rgb_seen"] += size(frame, on)
        totals["ycc"] += size(np.stack([ycc[..., 0], upsample(cb), upsample(cr)], -1).clip(0, 255), off)
        totals["ycc_half"] += size(ycc[..., :1], off) + size(np.stack([cb, cr], -1), off)
        subpixels += frame.size
        print(path.stem, {k: round(8 * v / subpixels, 4) for k, v in totals.items()}, flush=True)
    args.out.write_text(json.dumps({"images": [str(p) for p in args.images], "crop": args.crop,
                                    "bpsp": {k: 8 * v / subpixels for k, v in totals.items()}}, indent=1))


if __name__ == "__main__":
    main()

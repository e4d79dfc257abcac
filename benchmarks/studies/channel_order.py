"""Which channel order the online engine codes best, and how near the encoder's choice comes
(validation images only, never Kodak): every order of R, G, B coded in the given order, the
best of all six and of the orders the encoder tries (trainer.engine.settings.ORDERS) per image, and
the encoder's own choice (`channel_order: 1`, made on the image's middle rows).

    python benchmarks/studies/channel_order.py --images ../shared/data/photos/{005,012,023,036}.png \
        --crop 512x384 --camera ../shared/data/camera --limit 11 --preset max \
        --out benchmarks/results/channel_order.json

Sizes are of the engine's payload alone (no fallback), relative to the given order's.
"""

import itertools
import json
from dataclasses import replace

import numpy as np

from engine_study import validation_parser, validation_sets  # this folder is on the path of its scripts
from trainer.engine import coder
from trainer.engine.settings import ORDERS, PRESETS
from trainer.engine.tables import make_tables


def main() -> None:
    parser = validation_parser(__doc__.split("\n")[0])
    parser.add_argument("--preset", default="max", choices=sorted(PRESETS))
    args = parser.parse_args()
    tables = make_tables()
    given = replace(PRESETS[args.preset], channel_order=0)
    orders = list(itertools.permutations(range(3)))
    tried = [orders.index(order) for order in ORDERS]
    results = {"preset": args.preset, "orders": ["".join("RGB"[c] for c in o) for o in orders], "sets": {}}
    for name, images in validation_sets(args).items():
        sizes = np.array([[len(coder.encode(np.ascontiguousarray(image[..., list(order)]), given, tables)[0])
                           for order in orders] for image in images])
        chosen = sum(len(coder.encode(image, replace(given, channel_order=1), tables)[0]) for image in images)
        base = sizes[:, 0].sum()
        row = {"images": len(images), "per_order": dict(zip(results["orders"], (sizes.sum(0) / base).tolist())),
               "best_of_six": float(sizes.min(1).sum() / base), "best_of_tried": float(sizes[:, tried].min(1).sum() / base),
               "encoder_choice": chosen / base, "per_image": sizes.tolist()}
        results["sets"][name] = row
        print(f"{name:7s} " + "  ".join(f"{o} {r:.4f}" for o, r in row["per_order"].items())
              + f"  | best of 6 {row['best_of_six']:.4f}, of those tried {row['best_of_tried']:.4f},"
              f" the encoder's choice {row['encoder_choice']:.4f}", flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""The online engine's settings: what an online bundle's codec.json holds under "engine".

Every setting is an integer; the compiled kernel reads them by name from a `Params` record (a
namedtuple made from the fields below, `as_params`) (the encoder's choices and fallbacks are read by trainer.engine.coder
and trainer.codec.online). Presets: `fast` (normalized LMS on
the sub-predictors, then the mixing stage) and `max` (recursive least squares in float64 over 26
inputs, the LMS beside them, then the mixing stage, the channel order chosen per image; fewer
bits, ~3x slower). Also here: the encoder's choices as the payload's first byte records them
(`ORDERS`, `Choice`). Their speeds, one thread, AVX-512: benchmarks/EXPERIMENTS.md
(`benchmarks/studies/engine_study.py`; on Kodak, `pixlm bench`: benchmarks/results/kodak/report.md). Values were chosen on held-out photos and
camera crops, never on Kodak (`benchmarks/studies/engine_study.py`, benchmarks/EXPERIMENTS.md).
"""

from collections import namedtuple
from dataclasses import asdict, dataclass, fields

import numpy as np
from trainer.errors import PixlmError


class EngineSettingsError(PixlmError):
    """codec.json's engine settings are not ones this engine runs."""


@dataclass(frozen=True)
class EngineSettings:
    lms_shift: int = 6  # NLMS step 2**-lms_shift
    weight_sets: int = 2  # LMS/RLS weight sets per channel, chosen by the local error energy
    ols: int = 0  # 1: recursive least squares (float64, Cholesky) replaces the NLMS; 2: the encoder chooses
    ols_interval: int = 2  # solve every n pixels
    ols_decay_shift: int = 11  # forgetting factor 1 - 2**-s
    ols_ridge: int = 10  # ridge, in hundredths
    energy_channel: int = 2  # weight of the pixel's previous channel's error in the energy
    energy_best: int = 4  # weight (/16) of the best sub-predictor's local error
    energy_far: int = 12  # weight (/16) of the errors at NN, WW, NEE
    scale_adapt_shift: int = 6  # the mean |residual| of a context follows with rate 2**-s
    scale_init: int = 16  # initial mean |residual| per energy unit (/16)
    intensity_bits: int = 3  # 2**bits brightness classes of the scale contexts
    scale_step: int = 2  # table rows between the candidate scales of the scale search
    scale_search_shift: int = 7  # the candidates' running code lengths forget with rate 2**-s
    stripe_rows: int = 512  # rows of independent stripes coded in parallel (0: whole image)
    blend_far: int = 1  # 1: the blend weighs each predictor's errors at WW and NN too
    # Contexts per pixel-position parity (x and y odd or even): chroma-subsampled sources (camera
    # JPEGs, Photo CD) repeat every 2 pixels. 0: never, 1: always, 2: the encoder tries both on
    # the image's middle rows and the payload's first byte records which (as for `ols: 2`).
    parity: int = 2
    scale_mix: int = 1  # quarters of the second scale context (gradient x texture) in the scale
    # Classical codecs the encoder also tries, keeping the smallest stream (trainer.codec.fallback):
    fallback_webp: int = 1  # lossless WebP (method 4)
    fallback_jxl: int = 0  # lossless JPEG-XL at this effort (0: not tried)
    # The mixing stage (trainer.engine.mixing): values coded as binary decisions, each mixed from
    # the logistic and adaptive context models. 0: the logistic codes the value directly.
    mix: int = 0
    mix_lr: int = 6  # the mixers' learning rate (4x while a stripe is young)
    mix_limit: int = 400  # a counter's rate falls as 1/(n+2) down to 1/(limit+2)
    # 1: the least squares also see 5 farther neighbours (NWW, NNW, NNWW, NEE, NNEE) and the previous
    # channel's differences at NW, NN, WW carried over (26 inputs instead of 18)
    ols_wide: int = 0
    # 1: the encoder also tries coding the first three channels in another order (trainer.engine.settings.ORDERS)
    channel_order: int = 0
    # 1: where a fallback comes within 3 % of the engine's stream, also WebP method 6 and JPEG-XL effort 10
    fallback_best: int = 0
    # 1: where every pixel is one a JPEG decoder makes from integer Y, Cb, Cr (trainer.engine.colour),
    # the encoder also tries coding those planes instead of R, G, B (the payload's first byte records it)
    colour: int = 0
    # 1: the bundle's network (trainer.engine.models.network) predicts each value; its prediction is one
    # more input of the least squares (with `ols`)
    network: int = 0
    # 1: a model of the colours seen so far (trainer.engine.models.seen) is one more input of the mixers;
    # 2: its second channel's rows also keyed by the left neighbour's difference of the first two
    seen: int = 0
    # 1: with `seen`, a value's last steps are binary decisions too, down to the value, not one symbol
    # under the logistic (slower where residuals are large)
    halvings: int = 0
    # 1: where the image's colours lie on a rounded linear lattice found per image (video frames,
    # Photo CD scans: trainer.engine.lattice), the encoder codes its planes instead of R, G, B; the
    # payload carries the lattice
    lattice: int = 0
    # 1: with `ols` and `parity`, the least squares also keep a weight set per pixel-position parity (where
    # chroma repeats every 2 pixels, what predicts a value depends on where it lies in its 2x2 block)
    ols_parity: int = 0

    def __post_init__(self):
        limits = {"lms_shift": (1, 20), "weight_sets": (1, 8), "ols": (0, 2), "ols_interval": (1, 64),
                  "ols_decay_shift": (4, 20), "ols_ridge": (1, 10000),
                  "energy_channel": (0, 16), "energy_best": (0, 64), "energy_far": (0, 64),
                  "blend_far": (0, 1), "parity": (0, 2), "scale_mix": (0, 4), "fallback_webp": (0, 1),
                  "fallback_jxl": (0, 10), "mix": (0, 1), "mix_lr": (1, 256), "mix_limit": (1, 1023), "ols_wide": (0, 1), "channel_order": (0, 1), "fallback_best": (0, 1), "colour": (0, 1), "network": (0, 1), "seen": (0, 2), "halvings": (0, 1), "lattice": (0, 1), "ols_parity": (0, 1),
                  "scale_adapt_shift": (1, 12), "scale_init": (1, 256), "intensity_bits": (0, 6),
                  "scale_step": (0, 16), "scale_search_shift": (1, 16), "stripe_rows": (0, 1 << 20)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise EngineSettingsError(f"engine setting {name}={value!r}: an integer from {low} to {high}")
        if self.seen and not self.mix or self.halvings and not self.seen:
            raise EngineSettingsError("engine settings: seen needs mix=1, halvings needs seen")
        if 0 < self.stripe_rows < 16:
            raise EngineSettingsError(f"engine setting stripe_rows={self.stripe_rows}: 0 (whole image) or >= 16")

    @classmethod
    def from_dict(cls, values: dict) -> "EngineSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EngineSettingsError(f"unknown engine setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def as_params(self) -> "Params":
        """The settings as the kernel reads them: a record of int64 fields, by name."""
        return Params(*(np.int64(getattr(self, f.name)) for f in fields(self)))


# The kernel's view of EngineSettings: the same names, so no index can drift from the fields.
Params = namedtuple("Params", [f.name for f in fields(EngineSettings)])


# Orders of the first three channels the encoder may try (setting `channel_order`; trainer.engine.coder
# codes them; further channels, alpha, stay last): as given, the second first, the third before the
# second. Each later channel is predicted from the earlier ones, so which comes first matters:
# camera crops code smaller green first, photos mostly as given (benchmarks/EXPERIMENTS.md).
ORDERS = ((0, 1, 2), (1, 0, 2), (0, 2, 1))


@dataclass(frozen=True)
class Choice:
    """One way the encoder may code an image: settings with each "auto" resolved, a channel order."""
    settings: EngineSettings
    order: int = 0
    ycc: bool = False  # the first three channels coded as JPEG's Y, Cb, Cr (trainer.engine.colour)
    lattice: bool = False  # ... as the planes of a lattice found for the image (trainer.engine.lattice)

    def byte(self) -> bytes:
        return bytes([self.settings.parity | self.settings.ols << 1 | self.order << 2 | self.ycc << 4 | self.lattice << 5])

    def permutation(self, channels: int) -> list[int]:
        return permutation(self.order, channels)


def permutation(order: int, channels: int) -> list[int]:
    """The image's channels in the order `ORDERS[order]` codes them (further channels last; images
    of 1 or 2 channels as they are)."""
    return list(ORDERS[order]) + list(range(3, channels)) if channels >= 3 else list(range(channels))


def choice_facts(byte: int, channels: int) -> dict:
    """What a payload's first byte says the encoder chose (for `pixlm info`): the channel order as
    letters of the first three channels (R, G, B; as JPEG's planes "Y,Cb,Cr"; as a lattice's planes
    "P1,P2,P3"), None for an order this engine does not know."""
    order, ycc, planes = (byte >> 2) & 3, bool(byte & 16), bool(byte & 32)
    names = (("Y", "Cb", "Cr") if ycc else ("P1", "P2", "P3") if planes else ("R", "G", "B")) if channels >= 3 else ("L", "A")[:channels]
    known = order < len(ORDERS) and (order == 0 or channels >= 3)
    return {"parity_contexts": bool(byte & 1), "least_squares": bool(byte & 2), "jpeg_ycbcr": ycc, "lattice": planes,
            "channel_order": ("," if ycc or planes else "").join(names[c] for c in permutation(order, min(channels, 3)))
            if known else None}


# fast tries JPEG-XL at effort 2 (far faster than the engine: insurance for synthetic images,
# where the engine is near it); max tries effort 9 (~0.5 M/s); where that comes within 3 % of the
# engine's stream, both also try WebP method 6 and JPEG-XL effort 10 (the flat screenshot of
# benchmarks/studies/flat_study.py: WebP 0.168 bpsp, JPEG-XL e9 0.222; never on Kodak's photos). max always runs the wide least squares (the
# encoder's choice of LMS instead no longer paid: camera crops +0.05 %), the LMS beside them; its
# encoder also chooses the channel order (fast's would fall under 1 M subpixels/s encode), and its
# stripes are 1024 rows (a stripe's fresh start cost 768-row crops 0.17 % at 512). Both code a
# decoded JPEG as its Y, Cb, Cr planes (`colour`: camera crops 000-007 -17.6 % with max,
# benchmarks/results/camera; benchmarks/EXPERIMENTS.md). Both model the colours seen so far (`seen`: video
# frames -9.3 % with max, held-out photos -0.3 %, camera crops 0.0 %; benchmarks/EXPERIMENTS.md). Both
# code an image on a lattice found for it as its planes (`lattice`: video frames -20.9 % with max,
# benchmarks/results/lattice_study.json). max's least squares keep a weight set per pixel-position parity
# where the encoder's parity choice finds it pays (`ols_parity`: ffmpeg's video frames of the held-out crops
# -4.9 %, camera crops -0.6 %, held-out photos 0.0 %; benchmarks/EXPERIMENTS.md).
PRESETS = {"fast": EngineSettings(mix=1, fallback_webp=0, fallback_jxl=2, fallback_best=1, colour=1, seen=1, lattice=1),
           "max": EngineSettings(ols=1, mix=1, ols_wide=1, channel_order=1, stripe_rows=1024, fallback_webp=0,
                                 fallback_jxl=9, fallback_best=1, colour=1, seen=1, lattice=1, ols_parity=1)}

"""The engine's seen-colours model (trainer/engine/models/seen.py): its window and counts against a
plain set, and what it is for: an image whose colours lie on a rounded lattice (a video decoder's
output) codes smaller with it, and decodes exactly, on its own and in the presets."""

from dataclasses import replace

import numpy as np

from trainer.engine import coder
from trainer.engine.models import seen
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables

TABLES = make_tables()


def test_the_window_and_its_counts_match_a_plain_set():
    rng = np.random.default_rng(1)
    state = seen.new(1, 16)
    for row in (0, 5, 300, seen.ROWS - 1):
        values = {int(v) for v in rng.choice(256, 40, replace=False)}
        for v in values:
            seen.add(state, row, v)
        for P in [0, 1, 15, 16, 17, 63, 64, 100, 191, 192, 239, 240, 241, 255]:
            word, full = seen.window(state, row, P)
            assert full == 3  # 40 values: the fullest class
            for i in range(2 * seen.WINDOW + 1):
                assert bool((word >> i) & 1) == (P - seen.WINDOW + i in values)
            for a, b in ((P, P + 1), (P + 1, 256), (0, P), (P + 2, P + 40), (P - 9, P - 3)):
                inside = range(max(a, P - seen.WINDOW), min(b, P + seen.WINDOW + 1))
                assert seen._count(word, P, a, b) == sum(v in values for v in inside)
    assert seen.window(state, 7, 128) == (0, 0)  # a row never written: empty


def lattice_image(height: int = 96, width: int = 128, seed: int = 3) -> np.ndarray:
    """A video decoder's output: integer Y and Cb, Cr (three regions of near-constant colour, held
    over 2x2 blocks: 4:2:0) converted to R, G, B as limited-range BT.601 in floating point and
    rounded: luma steps of 1.164 leave only some triples possible. (Full range needs no model:
    there a region's colour differences stay constant, which the engine's contexts already see.)"""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    luma = np.clip(60 + 120 * (x + y) / (height + width) + 20 * np.sin(x / 7.0)
                   + rng.normal(0, 3, (height, width)), 0, 255).round()
    hy, hx = np.mgrid[0:height // 2, 0:width // 2]
    region = hx * 3 // (width // 2) + 3 * (hy * 2 // (height // 2))
    chroma = rng.integers(100, 156, (6, 2))[region] + rng.integers(-1, 2, (height // 2, width // 2, 2))
    cb, cr = np.moveaxis(np.repeat(np.repeat(chroma, 2, 0), 2, 1) - 128.0, -1, 0)
    k = 255 / 219
    rgb = np.stack([luma - 16 + 1.402 * cr, luma - 16 - 0.344136 * cb - 0.714136 * cr, luma - 16 + 1.772 * cb], -1) * k
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def test_a_lattice_image_codes_smaller_with_the_model_and_round_trips():
    """With `fast` (max's kernels run the same model; its round trips: tests/test_engine.py)."""
    assert PRESETS["fast"].seen == 1 and PRESETS["max"].seen == 1  # on in the shipped presets
    image = lattice_image()
    settings = replace(PRESETS["fast"], parity=1, lattice=0)  # coded as R, G, B, not as its lattice's planes
    on, _ = coder.encode(image, settings, TABLES)
    off, _ = coder.encode(image, replace(settings, seen=0), TABLES)
    assert len(on) < 0.95 * len(off), (len(on), len(off))
    for payload, used in ((on, settings), (off, replace(settings, seen=0))):
        assert np.array_equal(coder.decode(payload, image.shape, used, TABLES), image)


def test_the_study_settings_round_trip():
    """`seen` 2 (the second channel's rows also keyed by G - R at W) and `halvings` are settings a
    bundle may set (`pixlm export-online --set`): their streams decode to the image."""
    image = lattice_image(40, 56)
    for changes in ({"seen": 2}, {"halvings": 1}, {"seen": 2, "halvings": 1}):
        settings = replace(PRESETS["max"], **changes)
        payload, _ = coder.encode(image, settings, TABLES)
        assert np.array_equal(coder.decode(payload, image.shape, settings, TABLES), image), changes

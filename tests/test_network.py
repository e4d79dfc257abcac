"""The engine's network (trainer/engine/models/network.py): the compiled integer inference equals
its numpy twin (what training and export use) input for input and output for output; quantization
keeps the float network's predictions; the engine codes and decodes exactly with it."""

from dataclasses import replace

import numpy as np

from trainer.engine import coder
from trainer.engine.models import network
from trainer.engine.models.rows import PAD
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables


def random_layers(seed: int, hidden: int = 16) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"w1": rng.normal(0, 0.3, (hidden, network.D)), "b1": rng.normal(0, 2, hidden),
             "w2": rng.normal(0, 2, hidden), "b2": float(rng.normal(0, 4))} for _ in range(network.SLOTS)]


def photo_like(seed: int, height: int = 12, width: int = 15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 9 + y * 5)[..., None] + np.array([0, 40, 90])
    return np.clip(base + rng.integers(-20, 21, (height, width, 3)), 0, 255).astype(np.uint8)


def test_compiled_inference_equals_the_numpy_twin():
    net = network.quantize(random_layers(0))
    image = photo_like(1)
    height, width = image.shape[:2]
    f = np.zeros(network.D, dtype=np.int64)
    for c in range(3):
        twin_f, twin_ref = network.features_numpy(image, c)
        twin_out = network.predict_numpy(net, twin_f, c)
        got_f, got_ref, got_out = [], [], []
        for y in range(2, height):
            V = np.zeros((3, width + 2 * PAD, 3), dtype=np.int64)  # rows y, y-1, y-2 as the engine keeps them
            for r, dy in enumerate((0, 1, 2)):
                V[r, PAD:PAD + width] = image[y - dy]
            for x in range(2, width - 2):
                got_ref.append(network.features(V, 0, 1, 2, x + PAD, c, f))
                got_f.append(f.copy())
                got_out.append(network.predict(net, f, c))
        assert np.array_equal(np.array(got_f), twin_f) and np.array_equal(np.array(got_ref), twin_ref), c
        assert np.array_equal(np.array(got_out), twin_out), c
        assert np.ptp(twin_out) > 0  # the outputs vary: the comparison means something


def test_quantization_keeps_the_float_networks_predictions():
    layers = random_layers(2)
    net = network.quantize(layers)
    for c in range(3):
        f, _ = network.features_numpy(photo_like(3, 30, 30), c)
        layer = layers[c]
        exact = np.maximum(0, f @ layer["w1"].T + layer["b1"]) @ layer["w2"] + layer["b2"]
        assert np.abs(network.predict_numpy(net, f, c) - exact).mean() < 0.02 * np.abs(exact).mean() + 1


def test_the_engine_codes_exactly_with_the_network_and_it_changes_the_stream():
    tables = make_tables()
    with_net = {**tables, **{f"net_{k}": v for k, v in network.quantize(random_layers(4))._asdict().items()}}
    image = photo_like(5, 40, 33)
    settings = replace(PRESETS["max"], network=1)
    payload, _ = coder.encode(image, settings, with_net, threads=1)
    assert np.array_equal(coder.decode(payload, image.shape, settings, with_net, threads=1), image)
    off, _ = coder.encode(image, PRESETS["max"], with_net, threads=1)
    assert payload != off

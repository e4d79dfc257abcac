"""Integer bundles (trainer.models.integer_context): the same tables and the same adapted weights
whatever the batch, the summation order, the thread count or the process; close to the float
model they come from; coded losslessly."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.codec.bundle import BundleError, open_bundle
from trainer.export import export_bundle
from trainer.codec.registry import open_codec
from trainer.models.context import ContextModel, scale
from trainer.models.integer_context import IntegerContextModel, quantize_grad, to_units
from trainer.models.integer_mixture import IntegerMixture, make_tables

ROOT = Path(__file__).parent.parent
V5 = ROOT / "checkpoints" / "pixlm-context-v5"  # the default: 16-bit activation grids


@pytest.fixture(scope="module")
def model() -> IntegerContextModel:
    return open_bundle(V5).load_model()


def test_16_bit_grids_match_the_float_model():
    """The default bundle's 16-bit activation grids against its own float32 masters on a real photo
    crop: static bits within 0.05 % (measured on validation crops: -0.01 %, 12-bit grids +0.18 %;
    benchmarks/EXPERIMENTS.md)."""
    from PIL import Image

    image = torch.from_numpy(np.asarray(Image.open(ROOT / "tests" / "expected" / "astronaut-64x40.png")).copy())
    ys, xs = (t.flatten() for t in torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]), indexing="ij"))
    targets = image[ys, xs]
    float_model = ContextModel.from_pretrained(V5)
    with torch.no_grad():
        reference = float_model(float_model.context(float_model.pad(image), ys, xs), targets).double().mean().item()
    integer = open_bundle(V5).load_model()
    assert len(integer.trunk[0][1].table) == 65535
    bits = integer.bits(integer.context(integer.pad(image), ys, xs), targets).mean().item()
    assert abs(bits / reference - 1) < 0.0005, (bits, reference)


def block(n: int = 300, seed: int = 0):
    """Contexts (u) and targets of n pixels of a smooth random image (neighbours agree, as in photos)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, size=(n, 1, 3))
    window = np.clip(base + rng.integers(-12, 13, size=(n, 24, 3)), 0, 255)
    targets = np.clip(base[:, 0] + rng.integers(-6, 7, size=(n, 3)), 0, 255).astype(np.uint8)
    return to_units(torch.from_numpy(window.reshape(n, -1))), torch.from_numpy(targets)


def tables(model, context, targets) -> list[np.ndarray]:
    features, previous = model.features(context), to_units(targets)
    return [model.frequencies(features, c, previous[:, :c], 16) for c in range(3)]


def test_tables_are_valid_and_close_to_the_float_model(model):
    context, targets = block()
    freqs = tables(model, context, targets)
    for f in freqs:
        assert f.dtype == np.int64 and f.min() >= 1 and (f.sum(1) == 1 << 16).all()
    bits = np.mean([16 - np.log2(f[np.arange(len(f)), targets[:, c].numpy()]) for c, f in enumerate(freqs)])
    float_model = ContextModel.from_pretrained(V5)
    with torch.no_grad():
        float_bits = float_model((context / 255).float(), targets).mean().item()  # u / 255: the float model's scale
    assert abs(bits / float_bits - 1) < 0.01


@pytest.mark.parametrize("rows", [1, 5, 15, 16, 17, 33, 129, 255])  # one table pass: 128 rows
def test_tables_do_not_depend_on_the_batch(model, rows):
    context, targets = block()
    whole = tables(model, context, targets)
    for start in range(0, len(targets), rows):
        part = tables(model, context[start:start + rows], targets[start:start + rows])
        for c in range(3):
            assert np.array_equal(part[c], whole[c][start:start + rows])


def test_sums_are_exact_in_any_order(model):
    """The property that makes streams portable: permuting a layer's inputs (another summation
    order, as another BLAS or CPU would use) gives the same bits. Float weights would not."""
    context, targets = block()
    linear = model.trunk[1][0]
    x = model.trunk[0][1].forward(model.trunk[0][0].forward(model.inputs(context)))[0]
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(1))
    out = linear.forward([x])
    permuted = (x[:, perm] @ linear.w_int[:, perm].T) * (linear.row * linear.segments[0][2]) + linear.bias
    assert torch.equal(out, permuted)
    floats = x[:, perm] * 0.37 @ linear.weight[:, perm].T  # the same with non-integer terms
    assert not torch.equal(floats, x * 0.37 @ linear.weight.T)


def test_a_training_step_is_exact_whatever_the_pixel_order_and_lowers_the_loss(model):
    context, targets = block(512)
    before = model.bits(context, targets).mean().item()
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    perm = torch.randperm(512, generator=torch.Generator().manual_seed(2))
    opt_a, opt_b = a.optimizer(2e-4), b.optimizer(2e-4)
    for _ in range(3):
        a.train_step(context, targets, opt_a)
        b.train_step(context[perm], targets[perm], opt_b)
    for la, lb in zip(a.linears, b.linears):
        assert torch.equal(la.weight, lb.weight) and torch.equal(la.w_int, lb.w_int)
    assert a.bits(context, targets).mean().item() < before - 0.01
    assert not torch.equal(a.linears[0].weight, model.linears[0].weight)  # the shipped copy did not move


def test_mixture_gradients_follow_the_float_loss():
    """The adaptation's hand-made gradient of the quantized mixture points where autograd's
    gradient of the float mixture does (straight through the rounding)."""
    mixture = IntegerMixture(make_tables())
    rng = torch.Generator().manual_seed(3)
    logits = torch.randn(400, 6, generator=rng, dtype=torch.float64)
    means = torch.rand(400, 6, generator=rng, dtype=torch.float64) * 1.6 - 0.8
    log_scales = torch.rand(400, 6, generator=rng, dtype=torch.float64) * 2 - 5
    target = ((means[:, 0] + 1) * 127.5).round().long().clamp(0, 255)  # near a component, where gradients live
    _, *grads = mixture.bits_and_grads(logits, means, log_scales, target)
    from trainer.models.context import discretized_logistic_log_prob

    params = [logits.clone().requires_grad_(), means.clone().requires_grad_(),
              log_scales.clone().requires_grad_()]
    (-discretized_logistic_log_prob(target.to(torch.uint8), *params) / np.log(2)).sum().backward()
    for ours, theirs in zip(grads, params):
        cos = torch.nn.functional.cosine_similarity(ours.flatten(), theirs.grad.flatten(), dim=0)
        assert cos > 0.98


def test_quantized_gradients_use_a_power_of_two_step():
    g = torch.tensor([[3e-7, -1.5e-6], [0.0, 7.7e-7]], dtype=torch.float64)
    ints, unit = quantize_grad(g)
    assert np.log2(unit) == int(np.log2(unit)) and ints.abs().max() < 2 ** 15
    assert torch.equal(ints, torch.round(ints)) and torch.allclose(ints * unit, g, rtol=1e-4)
    assert quantize_grad(torch.zeros(2, 2))[1] == 1.0
    for tiny in (g, g * 1e-290):  # scaling by 1 / unit (or, near the float64 range's end, dividing): exact
        ints, unit = quantize_grad(tiny)
        assert torch.equal(ints, torch.round(tiny / unit))


FINGERPRINT = """
import hashlib, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from tests.test_integer import V5, block, tables
from trainer.codec.bundle import open_bundle
torch.set_num_threads(int(sys.argv[1]))
torch.set_flush_denormal(sys.argv[2] == "1")
model = open_bundle(V5).load_model()
context, targets = block(512)
opt = model.optimizer(2e-4)
model.train_step(context, targets, opt)
digest = hashlib.sha256()
for f in tables(model, context, targets):
    digest.update(f.tobytes())
print(digest.hexdigest())
"""


def test_a_fresh_process_on_other_kernels_computes_the_same_tables(tmp_path):
    """After a training step, in processes that differ in threads, flush-to-zero and the CPU kernels
    torch dispatches to (ATEN_CPU_CAPABILITY=default: no AVX2/AVX-512, as on another CPU kind)."""
    script = tmp_path / "fingerprint.py"
    script.write_text(FINGERPRINT.format(root=str(ROOT)))
    runs = []
    for threads, ftz, capability in (("1", "1", None), ("2", "0", "default")):
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        env |= {"ATEN_CPU_CAPABILITY": capability} if capability else {}
        runs.append(subprocess.run([sys.executable, str(script), threads, ftz], capture_output=True, text=True,
                                   env=env, check=True).stdout.strip())
    assert len(runs[0]) == 64 and runs[0] == runs[1]


def test_integer_round_trip_spans_blocks_and_ignores_threads(tmp_path):
    """Encoder batches each block on all threads; the decoder goes front by front on one: same
    stream, same pixels."""
    rng = np.random.default_rng(4)
    image = np.clip(np.cumsum(rng.integers(-3, 4, size=(24, 40, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "in.png")
    bundle = open_bundle(V5)
    assert bundle.adaptation and bundle.adaptation.delay == 1
    codec = open_codec(bundle, progress=False, fallback=False)
    torch.set_num_threads(2)
    report = codec.encode(tmp_path / "in.png", tmp_path / "a.pxl", bits_map=True)
    assert report.model_bpsp == pytest.approx(report.bits.sum() / image.size)
    torch.set_num_threads(1)
    codec.encode(tmp_path / "in.png", tmp_path / "b.pxl")
    assert (tmp_path / "a.pxl").read_bytes() == (tmp_path / "b.pxl").read_bytes()
    decoded, _ = codec.decode(tmp_path / "a.pxl", tmp_path / "out.png")
    assert np.array_equal(decoded, image)


def test_sampled_adaptation_trains_on_every_kth_pixel_and_round_trips(tmp_path):
    """`every: 2`: a step on a block is exactly the step on its even pixels, and streams decode."""
    from trainer.codec.adapt import OnlineAdapter
    from trainer.config import Adaptation

    base = open_bundle(V5).load_model()
    context, targets = block(64)
    with OnlineAdapter(base, Adaptation(64, 2e-4, 1, 0, every=2)) as sampled, \
            OnlineAdapter(base, Adaptation(32, 2e-4, 1, 0)) as full:
        sampled.block_done(context, targets)
        full.block_done(context[::2], targets[::2])
        assert all(torch.equal(a.weight, b.weight) for a, b in zip(sampled.model.linears, full.model.linears))
        assert not torch.equal(sampled.model.linears[0].weight, base.linears[0].weight)
    source = ROOT / "tests" / "expected" / "astronaut-32x20.png"
    streams = []
    for every in (1, 2):
        out = tmp_path / f"every{every}"
        export_bundle(V5, out, quantize="integer", calibrate=[source],
                      adaptation=Adaptation(64, 2e-4, 2, 1, every=every))
        codec = open_codec(out, progress=False, fallback=False)
        assert codec.numeric_mode.endswith("-d1-e2" if every == 2 else "-d1")
        codec.encode(source, tmp_path / f"{every}.pxl")
        decoded, _ = codec.decode(tmp_path / f"{every}.pxl")
        from PIL import Image

        assert np.array_equal(decoded, np.asarray(Image.open(source)))
        streams.append((tmp_path / f"{every}.pxl").read_bytes())
    assert streams[0] != streams[1]


def test_static_integer_bundle_round_trip(tmp_path):
    """Without adaptation the encoder predicts the whole image in slices; the decoder agrees."""
    out = tmp_path / "static"
    export_bundle(V5, out, quantize="integer", calibrate=[ROOT / "tests" / "expected" / "astronaut-64x40.png"])
    codec = open_codec(out, progress=False, fallback=False)
    assert codec.bundle.adaptation is None and codec.numeric_mode == "ctx-int-v1"
    source = ROOT / "tests" / "expected" / "astronaut-32x20.png"
    codec.encode(source, tmp_path / "s.pxl")
    decoded, _ = codec.decode(tmp_path / "s.pxl")
    from PIL import Image

    assert np.array_equal(decoded, np.asarray(Image.open(source)))


def test_integer_export_needs_training_images(tmp_path):
    with pytest.raises(BundleError, match="--calibrate"):
        export_bundle(V5, tmp_path / "a", quantize="integer")
    with pytest.raises(BundleError, match="not an image file"):
        export_bundle(V5, tmp_path / "b", quantize="integer", calibrate=[tmp_path / "missing"])
    assert not (tmp_path / "b").exists()  # refused before anything was written
    with pytest.raises(BundleError, match="--calibrate"):
        export_bundle(V5, tmp_path / "c", calibrate=[tmp_path])


def test_u_units_are_the_float_models_scale_times_255():
    values = torch.arange(256, dtype=torch.uint8)
    assert torch.allclose(to_units(values) / 255, scale(values).double(), atol=1e-6)
    assert torch.equal(to_units(values), torch.round(to_units(values)))


def test_gradients_stay_bounded_where_the_tables_underflow():
    """A value far in a narrow mixture's tail: its table mass underflows to 0 while the sigmoid
    slopes do not. The gradient must stay of the float model's order (it once reached 1e11 and
    derailed the adaptation of a whole photo)."""
    mixture = IntegerMixture(make_tables())
    n = 64
    logits = torch.zeros(n, 6, dtype=torch.float64)
    means = torch.full((n, 6), -0.9, dtype=torch.float64)  # every component near value 13
    log_scales = torch.full((n, 6), -5.0, dtype=torch.float64)  # ~0.85 values wide
    target = torch.arange(100, 100 + n)  # dozens of scales away
    bits, *grads = mixture.bits_and_grads(logits, means, log_scales, target)
    assert torch.isfinite(bits).all() and bits.max() <= 24.0 + 1e-9  # floored at the tables' resolution
    for g in grads:
        assert torch.isfinite(g).all() and g.abs().max() < 1e5

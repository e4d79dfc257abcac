"""The context model in integer arithmetic: the same predictions on every machine, and an online
adaptation that every machine repeats bit for bit.

Float codecs decode only where the same floats come out: matmul kernels sum in an order that
depends on the CPU kind, the vector width and the thread count, and exp/erf/sigmoid differ in
their last bits between libraries and GPUs. Here every quantity that decides a probability is
computed with operations whose result IEEE-754 fixes exactly:

- Linear layers: int8 weights (one scale per output row; the linear skips int16) times integer
  activations, summed in float64. Every partial sum is an integer below 2**53, so the sum is
  exact whatever the order, the thread count, the BLAS or the device. The row scale is applied
  after the sum (one correctly rounded multiply).
- GELU: the pre-activation is rounded onto a 16-bit grid and looked up in a table stored in the
  bundle, which gives the next layer's 16-bit integer activation. The grids' scales were
  calibrated on training crops at export. A table's length gives its grid: v4 bundles keep their
  12-bit grids (4095 entries), which cost ~0.2 % bpsp against float on validation; 16 bits cost
  nothing measurable, and every sum stays an integer far below 2**53.
- The 256-way table: integer lookups (trainer.models.integer_mixture).
- The trunk's inputs are integers: pixel values as u = 2v - 255 (the float model's scaled
  pixels times 255), differences, gradients, MED, and GAP in 1/16.

The adaptation trains float64 master weights with the same arithmetic: the loss gradient comes
from the integer mixture's tables, and before every matmul of the backward pass the gradient is
rounded onto a 16-bit grid whose step is a power of two (from its max, an exact reduction), so
the backward sums are exact too. Adam runs elementwise, one correctly rounded operation at a
time; nothing non-integer is ever summed by a reduction kernel. After each step the int8
weights are re-derived from the masters.

Cost against the float model it came from: benchmarks/EXPERIMENTS.md (`benchmarks/studies/adapt_study.py` on a bundle).
"""

import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainer.models.context import ContextModel
from trainer.models.integer_mixture import IntegerMixture, lookup, make_tables, ordered_sum

ACT_TOP = 32767  # 16-bit signed activations and pre-activation grid (new exports)
WEIGHT_TOP = 127  # int8 weights
SKIP_TOP = 32767  # int16 for the linear skip predictors, whose small weights do not survive 8 bits
GRAD_BITS = 16
INTEGER_FILE = "integer.safetensors"  # grid scales and lookup tables, beside the float32 masters
COARSE, FINE = 1 / 255, 1 / (16 * 255)  # float value of one integer unit: pixels (u), GAP (u / 16)


def quantize_rows(weight: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row integer grid: (integer-valued weights, row scales)."""
    scale = weight.abs().amax(1).clamp(min=2.0 ** -60) / top
    return torch.round(weight / scale[:, None]).clamp(-top, top), scale


def quantize_grad(grad: torch.Tensor) -> tuple[torch.Tensor, float]:
    """grad ~ integers * unit, |integers| < 2**15, unit a power of two (so scaling is exact)."""
    low, high = torch.aminmax(grad) if grad.numel() else (0.0, 0.0)
    peak = max(-float(low), float(high))
    if peak == 0.0:
        return torch.zeros_like(grad), 1.0
    exponent = math.frexp(peak)[1] - (GRAD_BITS - 1)
    unit = math.ldexp(1.0, exponent)
    # Times 1 / unit, a power of two: the same value as dividing by unit, and cheaper; divide only
    # where 1 / unit would overflow float64.
    return torch.round(grad / unit if exponent < -1000 else grad * math.ldexp(1.0, -exponent)), unit


class IntLinear:
    """y = sum over input segments of (x_int @ W_int^T) * (row_scale * segment_scale) + bias, in
    float64; segments are column ranges whose integer inputs share one unit (`scale`)."""

    def __init__(self, linear: nn.Linear, segments: list[tuple[int, int, float]], top: int = WEIGHT_TOP):
        self.weight = linear.weight.detach().double().clone()
        self.bias = None if linear.bias is None else linear.bias.detach().double().clone()
        self.segments, self.top = segments, top
        self.refresh()

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.weight] + ([] if self.bias is None else [self.bias])

    def refresh(self) -> None:
        """Re-derive the integer weights from the masters (after an update)."""
        self.w_int, self.row = quantize_rows(self.weight, self.top)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        y = None
        for x, (a, b, s) in zip(parts, self.segments):
            term = (x @ self.w_int[:, a:b].T).mul_(self.row * s)
            y = term if y is None else y.add_(term)
        return y if self.bias is None else y.add_(self.bias)

    def backward(self, parts: list[torch.Tensor], grad: torch.Tensor, inputs: tuple[int, ...] = ()) -> list:
        """Store the weight (and bias) gradients from d(loss)/dy (N, out); return d(loss)/d(float
        input) of the segments in `inputs` (straight through every rounding)."""
        g, unit = quantize_grad(grad)
        self.grads = [torch.cat([(g.T @ x) * (unit * s) for x, (_, _, s) in zip(parts, self.segments)], 1)]
        if self.bias is not None:
            self.grads.append(g.sum(0) * unit)  # a sum of integers: exact
        if not inputs:
            return []
        g, unit = quantize_grad(grad * self.row)
        return [(g @ self.w_int[:, self.segments[i][0]:self.segments[i][1]]) * unit for i in inputs]


class IntGelu:
    """GELU as two (2 top + 1)-entry tables over the pre-activation grid: the next layer's integer
    activation, and GELU's slope there (for the adaptation's backward pass)."""

    def __init__(self, pre_scale: float, table: torch.Tensor, slope: torch.Tensor):
        self.pre_scale, self.table, self.slope = pre_scale, table.double(), slope.double()
        self.top = (len(table) - 1) // 2

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.round(y / self.pre_scale).clamp_(-self.top, self.top).add_(self.top).int()
        return lookup(self.table, index), index

    def backward(self, grad: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return grad * lookup(self.slope, index)


def gelu_tables(pre_scale: float, act_scale: float, top: int = ACT_TOP) -> tuple[torch.Tensor, torch.Tensor]:
    """(table, slope) of a GELU between grids of +-top steps (computed once, at export, then stored)."""
    x = torch.arange(-top, top + 1, dtype=torch.float64) * pre_scale
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    table = torch.round(x * cdf / act_scale).clamp(-top, top)
    slope = cdf + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return table.short(), slope.float()  # stored compactly; read back exactly (int16, float32)


class Adam:
    """Adam (torch's defaults) in elementwise float64 steps, each one correctly rounded operation
    (no fused lerp/addcmul, no pow: bias corrections are running products)."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.power1 = self.power2 = 1.0

    def step(self, grads: list[torch.Tensor]) -> None:
        b1, b2 = self.betas
        self.power1 *= b1
        self.power2 *= b2
        step_size = self.lr / (1.0 - self.power1)
        root = math.sqrt(1.0 - self.power2)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.mul_(b1).add_(g * (1.0 - b1))
            v.mul_(b2).add_((g * g) * (1.0 - b2))
            p.sub_((m / (v.sqrt() / root + self.eps)) * step_size)


class IntegerContextModel:
    """A ContextModel's weights and window, computed in integer arithmetic (module docstring): a
    numeric backend with ContextModel's codec interface (`pad`, `context`, `units`, `features`,
    `frequencies`, `bits`, `optimizer`, `train_step`, `load_weights`); canvases hold u = 2v - 255."""

    numeric_mode = "ctx-int-v1"  # any machine computes the same tables
    batch_invariant = True  # exact sums: any batch, thread count or CPU gives the same tables

    def __init__(self, model: ContextModel, fixed: dict[str, torch.Tensor]):
        self.config, self.geometry = model.config, model  # window offsets, gradient pairs, MED/GAP indices
        self.fixed = fixed
        c = model.config.channels
        width = model.trunk[0].in_features
        trunk_segments = [(0, width - c, COARSE), (width - c, width, FINE)] if model.classical else [(0, width, COARSE)]
        hidden = model.config.hidden
        self.trunk = []
        for i in range(model.config.layers):
            segments = trunk_segments if i == 0 else [(0, hidden, self._act_scale(f"trunk.{i - 1}"))]
            self.trunk.append((IntLinear(model.trunk[2 * i], segments), self._gelu(f"trunk.{i}")))
        top = self._act_scale(f"trunk.{model.config.layers - 1}")
        self.heads = [(IntLinear(head[0], [(0, hidden, top), (hidden, hidden + i, COARSE)]), self._gelu(f"heads.{i}"),
                       IntLinear(head[2], [(0, head[2].in_features, self._act_scale(f"heads.{i}"))]))
                      for i, head in enumerate(model.heads)]
        self.skips = [IntLinear(skip, [(0, skip.in_features, COARSE)], SKIP_TOP) for skip in model.skips]
        self.mixture_tables = IntegerMixture(fixed)

    def _act_scale(self, name: str) -> float:
        return float(self.fixed[f"gelu.{name}.act_scale"])

    def _gelu(self, name: str) -> IntGelu:
        f = self.fixed
        return IntGelu(float(f[f"gelu.{name}.pre_scale"]), f[f"gelu.{name}.table"], f[f"gelu.{name}.slope"])

    @property
    def linears(self) -> list[IntLinear]:
        return [lin for lin, _ in self.trunk] + [lin for head in self.heads for lin in (head[0], head[2])] + self.skips

    # -- the window --------------------------------------------------------------------------
    def pad(self, image: torch.Tensor) -> torch.Tensor:
        """(H, W, C) uint8 -> float64 canvas of u = 2v - 255 with a border of 0 (mid-grey)."""
        cfg = self.config
        h, w, c = image.shape
        canvas = torch.zeros(h + cfg.rows_above, w + 2 * cfg.cols_side + cfg.cols_left, c, dtype=torch.float64)
        canvas[cfg.rows_above:, cfg.cols_side + cfg.cols_left:cfg.cols_side + cfg.cols_left + w] = to_units(image)
        return canvas

    def units(self, values: torch.Tensor) -> torch.Tensor:
        """What a canvas holds of uint8 values."""
        return to_units(values)

    def context(self, canvas, ys, xs, images=None) -> torch.Tensor:
        return self.geometry.context(canvas, ys, xs, images)

    def inputs(self, context: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's integer inputs (the float model's, times 255; GAP times 16 * 255)."""
        g = self.geometry
        pixels = context.unflatten(1, (len(self.config.offsets), self.config.channels))
        anchor = pixels[:, g.anchor]
        gradients = (pixels[:, g.grad_a] - pixels[:, g.grad_b]).abs()
        coarse = [(pixels - anchor[:, None]).flatten(1), 4 * gradients.flatten(1), anchor]
        if g.classical is None:
            return [torch.cat(coarse, 1)]
        med, gap16 = med_gap_units(pixels, g.classical)
        return [torch.cat(coarse + [med - anchor], 1), gap16 - 16 * anchor]

    # -- prediction --------------------------------------------------------------------------
    def features(self, context: torch.Tensor) -> tuple:
        """(trunk output as integer activations, context, what the backward pass needs)."""
        x, kept = self.inputs(context), []
        for linear, gelu in self.trunk:
            a, index = gelu.forward(linear.forward(x))
            kept.append((x, index))
            x = [a]
        return x[0], context, kept

    def mixture(self, features: tuple, channel: int, previous: torch.Tensor) -> tuple:
        """(logits, means, log scales), each (N, K), of channel `channel` (previous: (N, channel)
        already coded channels in u), and what the backward pass needs."""
        hidden, context, _ = features
        first, gelu, last = self.heads[channel]
        parts = [hidden, previous]
        a, index = gelu.forward(first.forward(parts))
        skip_in = [torch.cat([context, previous], 1)]
        logits, means, log_scales = last.forward([a]).chunk(3, dim=1)
        means = means + self.skips[channel].forward(skip_in)
        return (logits, means, log_scales), (parts, index, a, skip_in)

    def frequencies(self, features: tuple, channel: int, previous: torch.Tensor, precision: int) -> np.ndarray:
        """(N, 256) integer frequency tables of channel `channel` (the codec's path)."""
        params, _ = self.mixture(features, channel, previous)
        return self.mixture_tables.frequencies(*params, precision)

    def bits(self, context: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, C) bits of uint8 targets under the quantized mixture (reports and studies only)."""
        features, previous = self.features(context), to_units(targets)
        return torch.stack([self.mixture_tables.bits_and_grads(*self.mixture(features, c, previous[:, :c])[0],
                                                                targets[:, c].long())[0]
                            for c in range(self.config.channels)], 1)

    # -- adaptation --------------------------------------------------------------------------
    def optimizer(self, lr: float) -> Adam:
        return Adam([p for lin in self.linears for p in lin.params], lr)

    def train_step(self, context: torch.Tensor, targets: torch.Tensor, optimizer: Adam) -> None:
        """One Adam step on the mean bits of (N, C) uint8 targets, in exact arithmetic."""
        features, previous = self.features(context), to_units(targets)
        n = float(targets.numel())
        g_hidden = None
        for c, (first, gelu, last) in enumerate(self.heads):
            (logits, means, log_scales), (parts, index, a, skip_in) = self.mixture(features, c, previous[:, :c])
            _, g_logits, g_means, g_log_scales = self.mixture_tables.bits_and_grads(
                logits, means, log_scales, targets[:, c].long())
            self.skips[c].backward(skip_in, ordered_sum(g_means)[:, None] / n)
            g_a, = last.backward([a], torch.cat([g_logits, g_means, g_log_scales], 1) / n, inputs=(0,))
            g_h, = first.backward(parts, gelu.backward(g_a, index), inputs=(0,))
            g_hidden = g_h if g_hidden is None else g_hidden + g_h
        grad = g_hidden
        for i in reversed(range(len(self.trunk))):
            (linear, gelu), (x, index) = self.trunk[i], features[2][i]
            out = linear.backward(x, gelu.backward(grad, index), inputs=(0,) if i else ())
            grad = out[0] if i else None
        optimizer.step([g for lin in self.linears for g in lin.grads])
        for lin in self.linears:
            lin.refresh()

    def load_weights(self, other: "IntegerContextModel") -> None:
        """Take another copy's weights (the adaptation's trainee -> the coder's model)."""
        for mine, theirs in zip(self.linears, other.linears):
            for p, q in zip(mine.params, theirs.params):
                p.copy_(q)
            mine.w_int, mine.row = theirs.w_int.clone(), theirs.row.clone()

    # -- folders -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory) -> "IntegerContextModel":
        directory = Path(directory)
        if not (directory / INTEGER_FILE).is_file():
            raise ValueError(f"{directory}: no {INTEGER_FILE} (an integer bundle keeps its grids and tables there)")
        return cls(ContextModel.from_pretrained(directory), load_file(directory / INTEGER_FILE))

    @staticmethod
    def write_fixed(model: ContextModel, contexts: torch.Tensor, targets: torch.Tensor, directory) -> None:
        """Calibrate the activation grids on training contexts and write the tables to `directory`."""
        save_file(fixed_point_tables(model, contexts, targets), Path(directory) / INTEGER_FILE)


def fixed_point_tables(model: ContextModel, contexts: torch.Tensor, targets: torch.Tensor) -> dict:
    """Grid scales (max |pre-activation| and |activation| of every GELU over the calibration
    contexts, over ACT_TOP) and every lookup table of the integer model."""
    gelus = {f"trunk.{i}": model.trunk[2 * i + 1] for i in range(model.config.layers)}
    gelus |= {f"heads.{c}": head[1] for c, head in enumerate(model.heads)}
    peaks = {name: [0.0, 0.0] for name in gelus}
    hooks = [module.register_forward_hook(
        lambda m, args, out, p=peaks[name]: p.__setitem__(slice(None), [max(p[0], float(args[0].abs().max())),
                                                                         max(p[1], float(out.abs().max()))]))
        for name, module in gelus.items()]
    with torch.no_grad():
        for i in range(0, len(targets), 65536):
            model(contexts[i:i + 65536], targets[i:i + 65536])
    for hook in hooks:
        hook.remove()
    fixed = {k: v.contiguous() for k, v in make_tables().items()}
    for name, (pre, act) in peaks.items():
        pre_scale, act_scale = pre / ACT_TOP, act / ACT_TOP
        table, slope = gelu_tables(pre_scale, act_scale)
        fixed |= {f"gelu.{name}.pre_scale": torch.tensor(pre_scale, dtype=torch.float64),
                  f"gelu.{name}.act_scale": torch.tensor(act_scale, dtype=torch.float64),
                  f"gelu.{name}.table": table, f"gelu.{name}.slope": slope}
    return fixed


def to_units(values: torch.Tensor) -> torch.Tensor:
    """uint8 pixel values -> u = 2v - 255 (float64 integers; the float model's scaled pixel times 255)."""
    return values.double() * 2 - 255


def med_gap_units(pixels: torch.Tensor, at: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """MED in u and GAP in u / 16 (both integers), from (N, len(offsets), C) pixels in u: the float
    model's `_med_gap` without rounding."""
    w, ww, n, nn_, nw, ne, nne = (pixels[:, at[k]] for k in ("w", "ww", "n", "nn", "nw", "ne", "nne"))
    lo, hi = torch.minimum(w, n), torch.maximum(w, n)
    med = torch.where(nw >= hi, lo, torch.where(nw <= lo, hi, w + n - nw))
    # CALIC's thresholds are in pixel values: one u is half a value, so they double here
    d = ((w - nw).abs() + (n - nn_).abs() + (ne - nne).abs()) - ((w - ww).abs() + (n - nw).abs() + (n - ne).abs())
    gap = 8 * (w + n) + 4 * (ne - nw)
    gap = torch.where(d > 64, (gap + 16 * w) / 2, torch.where(d > 16, (3 * gap + 16 * w) / 4, gap))
    gap = torch.where(d < -64, (gap + 16 * n) / 2, torch.where(d < -16, (3 * gap + 16 * n) / 4, gap))
    gap = torch.where(d > 160, 16 * w, torch.where(d < -160, 16 * n, gap))
    return med, gap

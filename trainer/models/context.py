"""A compact causal-context student: next-subpixel distributions from the pixels a decoder has.

An LLM over 16x16 patches must take one sequential step per subpixel of a patch, and it sees
only the rows above the patch. This student predicts each pixel from a fixed causal window
(`rows_above` rows of 2*`cols_side`+1 pixels, and `cols_left` pixels to its left), and each
channel from that window plus the channels of the same pixel already coded. So every pixel of
an anti-diagonal wavefront (`wavefront`) can be predicted at once: a 768x512 image takes
~2.8 k sequential steps instead of ~25 k.

Output: per channel a mixture of `mixtures` discretized logistics over 0..255 (PixelCNN++):
unimodal, smooth bumps around predicted values are the right prior for natural images and
learn from far less data than a free 256-way softmax. `log_probs` turns it into the same
256-way distribution the LM codec uses, so the entropy coder is shared.

Saved as a Hugging Face-style folder: config.json + model.safetensors.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from trainer.config import ContextConfig
from trainer.models.frequencies import quantize
from trainer.units import LN2

MODEL_TYPE = "pixlm-context"


def wavefronts(height: int, width: int, lag: int):
    """Yield (ys, xs) int64 arrays of each wavefront t = lag*y + x, t = 0, 1, ...: every pixel's
    context lies in earlier wavefronts, so a wavefront is one batch."""
    for t in range(lag * (height - 1) + width):
        ys = np.arange(max(0, -(-(t - width + 1) // lag)), min(height - 1, t // lag) + 1)
        yield ys, t - lag * ys


class ContextModel(nn.Module):
    def __init__(self, config: ContextConfig):
        super().__init__()
        self.config = config
        c, k = config.channels, config.mixtures
        self.register_buffer("offsets", torch.tensor(config.offsets, dtype=torch.long), persistent=False)
        index = {offset: j for j, offset in enumerate(config.offsets)}
        # Local gradients |a - b| (per channel) tell the network how busy the neighbourhood is, the
        # main cue for how wide a distribution should be; given directly, they need not be learnt.
        pairs = gradient_pairs(config.offsets)
        self.register_buffer("grad_a", torch.tensor([a for a, _ in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("grad_b", torch.tensor([b for _, b in pairs], dtype=torch.long), persistent=False)
        self.anchor = index.get((0, -1), index.get((-1, 0), 0))
        self.classical = _classical_indices(config.offsets) if config.classical else None
        extra = 2 * c if config.classical else 0
        dims = [len(config.offsets) * c + len(pairs) * c + c + extra] + [config.hidden] * config.layers
        self.trunk = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.GELU())])
        # Head for channel i sees the trunk features and channels 0..i-1 of the same pixel.
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(config.hidden + i, config.head_hidden), nn.GELU(),
                          nn.Linear(config.head_hidden, 3 * k)) for i in range(c))
        # A linear predictor of each channel's value from the context and the coded channels, added
        # to every mixture mean: it starts as the plane predictor W + N - NW, plus the previous
        # channel's residual (x[c-1] - its plane prediction), so training begins from a classical
        # predictor and the network learns corrections.
        self.skips = nn.ModuleList(nn.Linear(len(config.offsets) * c + i, 1, bias=False) for i in range(c))
        with torch.no_grad():  # start every mixture at the skip predictor, a few pixel values wide
            for head in self.heads:
                head[-1].weight.mul_(0.1)
                head[-1].bias.zero_()
                head[-1].bias[2 * k:].fill_(INITIAL_LOG_SCALE)
        index = {offset: j for j, offset in enumerate(config.offsets)}
        with torch.no_grad():
            for i, skip in enumerate(self.skips):
                skip.weight.zero_()
                if not all(o in index for o in ((0, -1), (-1, 0), (-1, -1))):
                    continue
                for ch, sign in ((i, 1.0), (i - 1, -1.0)) if i else ((i, 1.0),):
                    for offset, w in (((0, -1), 1.0), ((-1, 0), 1.0), ((-1, -1), -1.0)):
                        skip.weight[0, index[offset] * c + ch] += sign * w
                if i:
                    skip.weight[0, len(config.offsets) * c + i - 1] = 1.0

    # -- context ------------------------------------------------------------------------------
    def pad(self, image: torch.Tensor) -> torch.Tensor:
        """(H, W, C) uint8 -> float canvas with a border of 0 (mid-grey after scaling), so every
        offset of every pixel indexes inside it. Positions outside the image read the border."""
        cfg = self.config
        h, w, c = image.shape
        canvas = torch.zeros(h + cfg.rows_above, w + 2 * cfg.cols_side + cfg.cols_left, c)
        canvas[cfg.rows_above:, cfg.cols_side + cfg.cols_left:cfg.cols_side + cfg.cols_left + w] = scale(image)
        return canvas

    def context(self, canvas: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                images: torch.Tensor | None = None) -> torch.Tensor:
        """(N, len(offsets) * C) scaled context of pixels (ys, xs) read from a padded canvas, or
        from a stack of padded canvases (B, H, W, C) at image indices `images` (training)."""
        cfg = self.config
        rows = ys[:, None] + cfg.rows_above + self.offsets[:, 0]
        cols = xs[:, None] + cfg.cols_side + cfg.cols_left + self.offsets[:, 1]
        if images is not None:
            return canvas[images[:, None], rows, cols].flatten(1)
        return canvas[rows, cols].flatten(1)

    # -- distributions ------------------------------------------------------------------------
    def features(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the channel heads need: (trunk features, the context itself for the linear skips).

        The trunk sees the window relative to the left neighbour (brightness does not change the
        shape of the prediction), the local gradients, and the left neighbour itself."""
        pixels = context.unflatten(1, (len(self.config.offsets), self.config.channels))
        anchor = pixels[:, self.anchor]
        gradients = (pixels[:, self.grad_a] - pixels[:, self.grad_b]).abs()
        parts = [(pixels - anchor[:, None]).flatten(1), 4 * gradients.flatten(1), anchor]
        if self.classical is not None:
            parts += [prediction - anchor for prediction in _med_gap(pixels, self.classical)]
        return self.trunk(torch.cat(parts, 1)), context

    def mixture(self, features: tuple, channel: int, previous: torch.Tensor) -> tuple:
        """(logit weights, means, log scales), each (N, K), of channel `channel`'s mixture;
        `previous` (N, channel) holds the pixel's already-coded channels, scaled."""
        hidden, context = features
        # Heads and skips in float32 even under bf16 autocast: bf16 holds a mean near +-1 only to
        # half a pixel value, too coarse for distributions a few values wide.
        with torch.autocast(hidden.device.type, enabled=False):
            out = self.heads[channel](torch.cat([hidden.float(), previous.float()], 1))
            weights, means, log_scales = out.chunk(3, dim=1)
            means = means + self.skips[channel](torch.cat([context.float(), previous.float()], 1))
        return weights, means, log_scales.clamp(min=-7.0)

    def log_probs(self, features, channel, previous) -> torch.Tensor:
        """(N, 256) natural-log probabilities of channel `channel`'s value (the codec's path)."""
        weights, means, log_scales = self.mixture(features, channel, previous)
        inner = scale(torch.arange(1, 256, dtype=means.dtype) - 0.5)  # the 255 inner bin edges
        z = (inner - means[..., None]) * torch.exp(-log_scales)[..., None]
        # One sigmoid per edge and component, mixed first: P(value < edge) of the mixture, then bins
        # as differences (tails folded into 0 and 255). Where the cdf is near 1 a bin loses ~1e-7
        # absolute, far below 2**-16, the smallest frequency the coder gives: no cost.
        cdf = torch.bmm(torch.softmax(weights, 1)[:, None], torch.sigmoid(z))[:, 0]
        probs = F.pad(cdf, (0, 1), value=1.0) - F.pad(cdf, (1, 0))
        return torch.log(probs.clamp(min=1e-30))

    def frequencies(self, features, channel: int, previous: torch.Tensor, precision: int) -> np.ndarray:
        """(N, 256) integer frequency tables of channel `channel` (the codec's path)."""
        return quantize(self.log_probs(features, channel, previous), precision)

    def forward(self, context: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, C) bits of each target subpixel (uint8 values) given its context (training loss)."""
        features, scaled = self.features(context), scale(target)
        bits = []
        for c in range(self.config.channels):
            weights, means, log_scales = self.mixture(features, c, scaled[:, :c])
            bits.append(-discretized_logistic_log_prob(target[:, c], weights, means, log_scales) / LN2)
        return torch.stack(bits, 1)

    # -- the codec's interface (shared with trainer.models.integer_context) -------------------
    numeric_mode = "ctx-fp32-cpu-ftz-1thread"  # what a stream's decoder must reproduce
    batch_invariant = False  # float sums change with the batch: an encoder repeats the decoder's batches

    def units(self, values: torch.Tensor) -> torch.Tensor:
        """What a canvas holds of uint8 values."""
        return scale(values)

    def bits(self, context: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, C) bits of uint8 targets (reports and studies)."""
        return self(context, targets)

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The adaptation's optimizer: Adam stepping one tensor at a time (foreach=False), so every
        step is the same floats for the same gradients."""
        return torch.optim.Adam(self.parameters(), lr=lr, foreach=False)

    def train_step(self, context: torch.Tensor, targets: torch.Tensor, optimizer) -> None:
        """One step on the mean bits of (N, C) uint8 targets (the online adaptation)."""
        with torch.enable_grad():
            optimizer.zero_grad(set_to_none=True)
            self(context, targets).mean().backward()
            optimizer.step()

    @torch.no_grad()
    def load_weights(self, other: "ContextModel") -> None:
        """Take another copy's weights (the adaptation's trainee -> the coder's model)."""
        for mine, trained in zip(self.parameters(), other.parameters()):
            mine.copy_(trained)

    # -- folders ------------------------------------------------------------------------------
    def save_pretrained(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"model_type": MODEL_TYPE, **asdict(self.config)}, indent=1))
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, directory / "model.safetensors")

    @classmethod
    def from_pretrained(cls, directory) -> "ContextModel":
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config.pop("model_type", None) != MODEL_TYPE:
            raise ValueError(f"{directory}: not a {MODEL_TYPE} model")
        if not config.pop("mixture_cdf", True):
            raise ValueError(f"{directory}: a v1 context model (per-component bins); pixlm 0.2.0 was the last to read it")
        model = cls(ContextConfig(**config))
        from trainer.models.quantize import dequantize_state  # int8 bundles: float32 after this, same code path

        model.load_state_dict(dequantize_state(load_file(directory / "model.safetensors")))
        return model.eval()


STEP = 2.0 / 255.0  # one pixel value in scaled units
INITIAL_LOG_SCALE = math.log(4 * STEP)  # logistic scale of 4 pixel values


def gradient_pairs(offsets) -> list[tuple[int, int]]:
    """Index pairs of horizontally or vertically adjacent pixels of the window: their absolute
    differences are trunk inputs."""
    index = {offset: j for j, offset in enumerate(offsets)}
    return [(index[(dy, dx)], index[(dy + ey, dx + ex)]) for dy, dx in offsets for ey, ex in ((0, 1), (1, 0))
            if (dy + ey, dx + ex) in index]


def _classical_indices(offsets) -> dict[str, int]:
    index = {offset: j for j, offset in enumerate(offsets)}
    names = {"w": (0, -1), "ww": (0, -2), "n": (-1, 0), "nn": (-2, 0), "nw": (-1, -1), "ne": (-1, 1), "nne": (-2, 1)}
    missing = [name for name, offset in names.items() if offset not in index]
    if missing:
        raise ValueError(f"classical=true needs rows_above >= 2, cols_side >= 1, cols_left >= 2 (missing {missing})")
    return {name: index[offset] for name, offset in names.items()}


def _med_gap(pixels: torch.Tensor, at: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """MED (LOCO-I) and GAP (CALIC) predictions, (N, C) each, from (N, len(offsets), C) scaled pixels."""
    w, ww, n, nn, nw, ne, nne = (pixels[:, at[k]] for k in ("w", "ww", "n", "nn", "nw", "ne", "nne"))
    lo, hi = torch.minimum(w, n), torch.maximum(w, n)
    med = torch.where(nw >= hi, lo, torch.where(nw <= lo, hi, w + n - nw))
    dh = (w - ww).abs() + (n - nw).abs() + (n - ne).abs()
    dv = (w - nw).abs() + (n - nn).abs() + (ne - nne).abs()
    d = (dv - dh) / STEP  # in pixel values, CALIC's thresholds
    gap = (w + n) / 2 + (ne - nw) / 4
    gap = torch.where(d > 32, (gap + w) / 2, torch.where(d > 8, (3 * gap + w) / 4, gap))
    gap = torch.where(d < -32, (gap + n) / 2, torch.where(d < -8, (3 * gap + n) / 4, gap))
    gap = torch.where(d > 80, w, torch.where(d < -80, n, gap))
    return med, gap


def scale(values: torch.Tensor) -> torch.Tensor:
    """0..255 -> -1..1."""
    return values.float() * STEP - 1.0


def discretized_logistic_log_prob(target, weights, means, log_scales) -> torch.Tensor:
    """log P(target) under the mixture, bins of width STEP, tails folded into 0 and 255 (PixelCNN++)."""
    x = scale(target)[:, None]
    inv = torch.exp(-log_scales)
    upper = (x + STEP / 2 - means) * inv
    lower = (x - STEP / 2 - means) * inv
    log_cdf_upper = upper - F.softplus(upper)          # log sigmoid(upper)
    log_one_minus_cdf_lower = -F.softplus(lower)       # log (1 - sigmoid(lower))
    # sigmoid(u) - sigmoid(l) = sigmoid(-l) - sigmoid(-u): take the side where both are small, so the
    # difference keeps its precision in the tails instead of cancelling near 1.
    flip = upper + lower > 0
    upper, lower = torch.where(flip, -lower, upper), torch.where(flip, -upper, lower)
    mid = torch.log((torch.sigmoid(upper) - torch.sigmoid(lower)).clamp(min=1e-12))
    t = target[:, None]
    log_bin = torch.where(t == 0, log_cdf_upper, torch.where(t == 255, log_one_minus_cdf_lower, mid))
    return torch.logsumexp(F.log_softmax(weights, 1) + log_bin, dim=1)


def pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ys, xs) of every pixel of a height x width image, raster order."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ys.flatten(), xs.flatten()


class ImageStack:
    """Every training image padded once, the codec's way, into one (B, H, W, C) canvas stack on
    the training device (smaller images sit top-left; their sizes bound the crops). A batch is
    then one gather on the device: no per-crop CPU work, no copies per step."""

    def __init__(self, images: list[np.ndarray], model: ContextModel, device="cpu"):
        cfg = model.config
        self.sizes = torch.tensor([im.shape[:2] for im in images])
        h, w = (int(v) for v in self.sizes.max(0).values)
        self.canvas = torch.zeros(len(images), h + cfg.rows_above, w + 2 * cfg.cols_side + cfg.cols_left,
                                  cfg.channels, device=device)
        self.values = torch.zeros(len(images), h, w, cfg.channels, dtype=torch.uint8, device=device)
        for i, image in enumerate(images):
            padded = model.pad(torch.from_numpy(image))
            self.canvas[i, :padded.shape[0], :padded.shape[1]] = padded.to(device)
            self.values[i, :image.shape[0], :image.shape[1]] = torch.from_numpy(image).to(device)

    def crops(self, model: ContextModel, count: int, size: int, rng: np.random.Generator):
        """Contexts and targets of every pixel of `count` random size x size crops; a crop's
        context reaches outside it into its image, exactly as in the codec."""
        device = self.canvas.device
        images = rng.integers(len(self.sizes), size=count)
        limits = self.sizes[images] - size + 1
        ys0 = (rng.random(count) * limits[:, 0].numpy()).astype(np.int64)
        xs0 = (rng.random(count) * limits[:, 1].numpy()).astype(np.int64)
        dy, dx = pixel_grid(size, size)
        ys = (torch.from_numpy(ys0)[:, None] + dy).flatten().to(device)
        xs = (torch.from_numpy(xs0)[:, None] + dx).flatten().to(device)
        which = torch.from_numpy(images).repeat_interleave(size * size).to(device)
        return model.context(self.canvas, ys, xs, which), self.values[which, ys, xs]

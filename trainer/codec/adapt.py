"""Online per-image adaptation of a context model: the codec keeps training on the image it codes.

A model trained on one kind of photo meets every new image with the wrong noise level, texture
and colour statistics; the codecs that beat JPEG-XL all adapt to each image while coding. Here
the coder goes through the wavefronts in order, and after every `block` coded pixels it takes
`steps` Adam steps on exactly those pixels (their contexts lie in the canvas, already coded). The
decoder has the same pixels at the same moment, so it repeats every step and holds the same
weights for the next wavefront: nothing is stored in the stream, and the adaptation keeps
following the image as its content changes.

Exactness: the steps are float32 autograd + Adam (foreach=False) on one thread, the codec's
numeric mode; the block boundaries depend only on the image size. Encoder and decoder therefore
compute the same weights bit for bit on the same machine kind, like the predictions themselves.
"""

import copy
import numpy as np
import torch

from trainer.config import Adaptation


class OnlineAdapter:
    """One image's adaptation: a private copy of the model and its optimizer state."""

    def __init__(self, model, settings: Adaptation):
        self.settings = settings
        self.model = copy.deepcopy(model)  # every image starts from the bundle's weights
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, foreach=False)
        self._ys, self._xs, self._count = [], [], 0

    def coded(self, ys: np.ndarray, xs: np.ndarray, canvas: torch.Tensor, image: np.ndarray) -> bool:
        """Record that pixels (ys, xs) are coded; once a block is full, train on it. True if it did."""
        self._ys.append(ys)
        self._xs.append(xs)
        self._count += len(ys)
        if self._count < self.settings.block:
            return False
        ys, xs = np.concatenate(self._ys), np.concatenate(self._xs)
        self._ys, self._xs, self._count = [], [], 0
        self.train(self.model.context(canvas, torch.from_numpy(ys), torch.from_numpy(xs)),
                   torch.from_numpy(image[ys, xs]))
        return True

    def train(self, contexts: torch.Tensor, targets: torch.Tensor) -> None:
        with torch.enable_grad():
            for _ in range(self.settings.steps):
                self.optimizer.zero_grad(set_to_none=True)
                self.model(contexts, targets).mean().backward()
                self.optimizer.step()


@torch.no_grad()
def adapted_bpsp(model, image: np.ndarray, settings: Adaptation | None) -> float:
    """Cross-entropy (bits per subpixel) of an image coded with online adaptation, teacher-forced:
    the codec's blocks and steps, but each block predicted in one batch (floats may differ from the
    codec's in the last bits; the sizes agree to ~0.01 %). For studies and validation, not coding."""
    from trainer.models.context import wavefronts

    height, width, _ = image.shape
    canvas = model.pad(torch.from_numpy(image))
    adapter = OnlineAdapter(model, settings) if settings else None
    current = adapter.model if adapter else model
    total, ys_block, xs_block, count = 0.0, [], [], 0

    def flush(train: bool):
        nonlocal total
        ys, xs = np.concatenate(ys_block), np.concatenate(xs_block)
        contexts = current.context(canvas, torch.from_numpy(ys), torch.from_numpy(xs))
        targets = torch.from_numpy(image[ys, xs])
        total += current(contexts, targets).double().sum().item()
        if adapter and train:
            adapter.train(contexts, targets)
        ys_block.clear()
        xs_block.clear()

    block = settings.block if settings else 1 << 16
    for ys, xs in wavefronts(height, width, model.config.lag):
        ys_block.append(ys)
        xs_block.append(xs)
        count += len(ys)
        if count >= block:
            flush(train=True)
            count = 0
    if count:
        flush(train=False)  # the last, partial block: coded, never trained on
    return total / image.size

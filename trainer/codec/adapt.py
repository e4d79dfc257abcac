"""Online per-image adaptation of a context model: the codec keeps training on the image it codes.

A model trained on one kind of photo meets every new image with the wrong noise level, texture
and colour statistics; the codecs that beat JPEG-XL all adapt to each image while coding. Here
the coder goes through the wavefronts in order, and after every `block` coded pixels it takes
`steps` Adam steps on exactly those pixels (their contexts lie in the canvas, already coded). The
decoder has the same pixels at the same moment, so it repeats every step and holds the same
weights for the next wavefront: nothing is stored in the stream, and the adaptation keeps
following the image as its content changes.

Exactness: the model takes its own steps (`optimizer`, `train_step`): a float model float32
autograd + Adam (foreach=False) on one thread, its numeric mode, so encoder and decoder compute
the same weights bit for bit on the same machine kind, like the predictions themselves; the
integer backend (trainer.models.integer_context) exact steps, the same on any machine. The block
boundaries depend only on the image size.

The second core (`delay: 1`): training on block i then runs in a worker thread while the coder
goes on with block i+1 on the weights trained through block i-1; at the end of block i+1 the
coder waits for that training and takes its weights. The schedule depends only on the block
boundaries, never on timing, so both sides still hold the same weights at every wavefront, and
each thread computes on one torch thread as before. The adaptation costs ~2x the prediction
(photo 005: 34.5 s against 16.4 s), so decoding on two cores takes about the adaptation's time.
"""

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from trainer.config import Adaptation
from trainer.models.context import wavefronts


class OnlineAdapter:
    """One image's adaptation: private copies of the model and its optimizer state. Close it (or
    use it in a `with` block) so that its worker thread, if any, ends."""

    def __init__(self, model, settings: Adaptation):
        self.settings = settings
        self.model = copy.deepcopy(model)  # what predicts; every image starts from the bundle's weights
        # What trains: with a delay, a second copy that the worker thread moves while `model` predicts.
        self.trainee = copy.deepcopy(model) if settings.delay else self.model
        self.optimizer = self.trainee.optimizer(settings.lr)
        # Flush-to-zero lives in each thread's FPU control word: the worker sets it as the coder does.
        self._worker = ThreadPoolExecutor(1, initializer=torch.set_flush_denormal, initargs=(True,)) \
            if settings.delay else None
        self._training = None  # the worker's job on the last full block
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
        self.block_done(self.model.context(canvas, torch.from_numpy(ys), torch.from_numpy(xs)),
                        torch.from_numpy(image[ys, xs]))
        return True

    def block_done(self, contexts: torch.Tensor, targets: torch.Tensor) -> None:
        """A block is coded: train on it now, or (delay) take the weights trained on the block
        before and train on this one in the worker."""
        if self._worker is None:
            self.train(contexts, targets)
            return
        if self._training is not None:
            self._training.result()  # re-raises a failure of the worker
            self.model.load_weights(self.trainee)
        self._training = self._worker.submit(self.train, contexts, targets)

    def train(self, contexts: torch.Tensor, targets: torch.Tensor) -> None:
        every = self.settings.every
        if every > 1:  # the same pixels on both sides: the block's coding order decides
            contexts, targets = contexts[::every], targets[::every]
        for _ in range(self.settings.steps):
            self.trainee.train_step(contexts, targets, self.optimizer)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def blocks(height: int, width: int, lag: int, block: int):
    """The adaptation's schedule: (fronts, full) for consecutive runs of wavefronts (context_model.
    wavefronts) holding >= `block` pixels each, `full` False only for a last, shorter run (coded,
    never trained on). Encoder, decoder and studies all cut an image this way."""
    fronts, count = [], 0
    for ys, xs in wavefronts(height, width, lag):
        fronts.append((ys, xs))
        count += len(ys)
        if count >= block:
            yield fronts, True
            fronts, count = [], 0
    if fronts:
        yield fronts, False


@torch.no_grad()
def adapted_bpsp(model, image: np.ndarray, settings: Adaptation | None) -> float:
    """Cross-entropy (bits per subpixel) of an image coded with online adaptation, teacher-forced:
    the codec's blocks and steps, each block predicted in one batch. For an integer model these
    are the codec's own predictions (batching changes nothing); for a float one the floats may
    differ from the codec's in the last bits (sizes agree to ~0.01 %). For studies, not coding."""
    height, width, _ = image.shape
    canvas = model.pad(torch.from_numpy(image))
    adapter = OnlineAdapter(model, settings) if settings else None
    current = adapter.model if adapter else model
    total = 0.0
    try:
        for fronts, full in blocks(height, width, model.config.lag, settings.block if settings else 1 << 16):
            ys = np.concatenate([f[0] for f in fronts])
            xs = np.concatenate([f[1] for f in fronts])
            contexts = current.context(canvas, torch.from_numpy(ys), torch.from_numpy(xs))
            targets = torch.from_numpy(image[ys, xs])
            total += current.bits(contexts, targets).double().sum().item()
            if adapter and full:
                adapter.block_done(contexts, targets)
    finally:
        if adapter:
            adapter.close()
    return total / image.size

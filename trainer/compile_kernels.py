"""Compile the codec's kernels (numba) into their on-disk cache, once: `python -m trainer.compile_kernels`.

numba compiles each kernel the first time it runs and keeps the machine code beside its source
(`trainer/**/__pycache__/*.nbi, *.nbc`), so without this the first `pixlm encode` after an install
spends a minute or two compiling. setup.sh runs it as its last step. It codes a small made-up photo
with both online bundles (8-bit and 16-bit) and a JPEG file of it with pixlm's coefficient model,
each way, and checks that each comes back.
"""

import io
import time

import numpy as np
from PIL import Image

from trainer import api
from trainer.codec import jpeg_coefficients


def main() -> None:
    start = time.perf_counter()
    y, x = np.mgrid[0:48, 0:64]
    noise = np.random.default_rng(0).integers(0, 9, size=(48, 64, 3))
    image = ((np.stack([x * 3 + y, x + 2 * y, 200 - x - y], axis=2) + noise) % 256).astype(np.uint8)
    for bundle in ("pixlm-online-max", "pixlm-online-fast"):
        for samples in (image, image.astype(np.uint16) * 257 + 3):
            assert np.array_equal(api.decode(api.encode(samples, bundle=bundle)), samples)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    assert jpeg_coefficients.decompress(jpeg_coefficients.compress(data), len(data)) == data
    print(f"pixlm's kernels compiled and cached in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

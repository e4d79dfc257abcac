"""Pillow plugin: after `import trainer.pillow`, `Image.open("a.pxl")` decodes and
`im.save("a.pxl")` encodes (the default bundle; `im.save("a.pxl", bundle="pixlm-online-fast",
strip=True)` for another bundle or without metadata).

Pillow holds 8-bit L, LA, RGB, RGBA and P images, and 16-bit gray (I;16); a stream of 16-bit
colour samples cannot become a PIL image and is refused with one line (decode it to an array
with `trainer.api.decode`).
"""

import io

import numpy as np
from PIL import Image, ImageFile

from trainer import api
from trainer.codec.container import MAGIC
from trainer.errors import PixlmError
from trainer.images.picture import picture_bytes

FORMAT = "PXL"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class PxlImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "pixlm lossless image stream"

    def _open(self):
        self._data = self.fp.read()
        facts = api.info(self._data)
        self._size = (facts["width"], facts["height"])
        if facts["depth"] > 8 and facts["channels"] != 1:
            raise PixlmError(f"a {facts['depth']}-bit {facts['mode']} stream has no PIL mode; "
                             "decode it with trainer.api.decode")
        self._mode = {1: "I;16" if facts["depth"] > 8 else "L", 2: "LA", 3: "RGB", 4: "RGBA"}[facts["channels"]]
        self.info["pixlm"] = facts
        self.tile = []

    def load(self):
        if self._data is not None:
            picture = api.decode_picture(self._data)
            decoded = Image.open(io.BytesIO(picture_bytes(picture)))
            decoded.load()
            self.im = decoded.im
            self._mode = decoded.mode
            self.info.update({k: v for k, v in decoded.info.items() if k not in self.info})
            self._data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    options = im.encoderinfo
    source = im if im.mode != "I;16" else np.asarray(im).astype(np.uint16)[..., None]
    fp.write(api.encode(source, options.get("bundle"), strip=bool(options.get("strip", False)),
                        threads=options.get("threads")))


Image.register_open(FORMAT, PxlImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".pxl")
Image.register_mime(FORMAT, "image/x-pixlm")

"""The fallback payload: lossless WebP or JPEG-XL, for images a model codes worse than a classical codec.

A model trained on photos is a poor coder of flat synthetic content (screenshots, diagrams,
renders): it never puts a whole pixel value's worth of certainty on one symbol, and such images
repeat exact colours that a photo model does not expect. WebP lossless (colour cache, backward
references, palettes) codes them in a fraction of the bits. So the encoder also writes the image
as lossless WebP and keeps whichever stream is smaller; the header's numeric mode says which,
and decoding a fallback stream needs no model. On photos the model's stream wins (Kodak: every
image), so the fallback costs only the time of one WebP encode.

Gray images go to WebP as RGB with the value copied (WebP has no gray mode), LA as RGBA; the
encoder keeps the WebP stream only after decoding it back to exactly the original pixels.

A bundle may also ask for lossless JPEG-XL at an effort of its choosing (online bundles: 2 in
`fast`, 9 in `max`): per image, the smallest of the model's stream and the fallbacks is kept,
so a photo JPEG-XL codes better than the model costs no more than JPEG-XL (numeric mode
`jpegxl-lossless`, the payload a JPEG-XL codestream, decoded by libjxl through imagecodecs).
And the strongest classical modes (`strongest()`: WebP method 6, JPEG-XL effort 10, several
times slower), where a bundle asks for them (online bundles: `fallback_best`), only where a
fallback came within `NEAR` of the model's stream: synthetic content, where a classical codec is the right coder and should be at
its best; on photos the model's stream is far smaller and they are not tried.
"""

import io

import numpy as np
from PIL import Image

MODE = "webp-lossless"  # the numeric modes of fallback streams
JXL_MODE = "jpegxl-lossless"
MODES = (MODE, JXL_MODE)
MAX_SIDE = 16383  # WebP's largest side
NEAR = 1.03  # a fallback this close to the model's stream (bytes) earns a try of the strongest modes
# image channels -> WebP channels, and back (gray copied into R, G and B)
_TO_WEBP = {1: [0, 0, 0], 2: [0, 0, 0, 1], 3: [0, 1, 2], 4: [0, 1, 2, 3]}
_FROM_WEBP = {1: [0], 2: [0, 3], 3: [0, 1, 2], 4: [0, 1, 2, 3]}


def encode(image: np.ndarray, method: int = 4) -> bytes | None:
    """Lossless WebP of an (H, W, C) uint8 image at `method` (0-6: effort), or None where WebP
    cannot hold it exactly."""
    height, width, channels = image.shape
    if max(height, width) > MAX_SIDE:
        return None
    colour = _TO_WEBP[channels]
    pil = Image.fromarray(np.ascontiguousarray(image[..., colour]), "RGBA" if len(colour) == 4 else "RGB")
    buffer = io.BytesIO()
    # exact: keep the RGB of fully transparent pixels (lossless WebP may otherwise rewrite them)
    # method 4 by default: method 6 gained ~2.5 % on a 768x512 photo (where the model wins anyway)
    # for 10x the time (10.9 s against 1.1 s, one-off timing), and nothing on the flat study's screenshot
    pil.save(buffer, "WEBP", lossless=True, quality=100, method=method, exact=True)
    return _checked(buffer.getvalue(), decode, image)


def _checked(data: bytes, decoder, image: np.ndarray) -> bytes | None:
    """`data` if `decoder` gives back exactly `image`, else None (a fallback is kept only if exact)."""
    try:
        return data if np.array_equal(decoder(data, *image.shape), image) else None
    except ValueError:
        return None


def decode(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """The (H, W, C) pixels of a fallback payload; ValueError if it is not such an image."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as pil:
            if pil.size != (width, height):
                raise ValueError(f"the WebP payload is {pil.size[0]}x{pil.size[1]}, the header says {width}x{height}")
            decoded = np.asarray(pil.convert("RGBA" if channels in (2, 4) else "RGB"))
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"the WebP payload does not decode ({err})") from None
    return np.ascontiguousarray(decoded[..., _FROM_WEBP[channels]])


def encode_jxl(image: np.ndarray, effort: int) -> bytes | None:
    """Lossless JPEG-XL of an (H, W, C) uint8 image at `effort`, checked by decoding it back."""
    import imagecodecs

    data = imagecodecs.jpegxl_encode(np.ascontiguousarray(image if image.shape[2] > 1 else image[..., 0]),
                                     lossless=True, distance=0, effort=effort)
    return _checked(data, decode_jxl, image)


def decode_jxl(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    import imagecodecs

    try:
        decoded = imagecodecs.jpegxl_decode(data)
    except Exception as err:  # imagecodecs raises its own JpegxlError
        raise ValueError(f"the JPEG-XL payload does not decode ({err})") from None
    decoded = decoded.reshape(decoded.shape[0], decoded.shape[1], -1)
    if decoded.shape != (height, width, channels) or decoded.dtype != np.uint8:
        raise ValueError(f"the JPEG-XL payload holds {decoded.dtype} {decoded.shape}, the header says "
                         f"{(height, width, channels)}")
    return np.ascontiguousarray(decoded)


def decode_any(mode: str, data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """The pixels of a fallback payload of either numeric mode."""
    return (decode if mode == MODE else decode_jxl)(data, height, width, channels)


def strongest() -> list:
    """(numeric mode, encoder) of the strongest lossless modes: WebP method 6, JPEG-XL effort 10."""
    from functools import partial

    return [(MODE, partial(encode, method=6)), (JXL_MODE, partial(encode_jxl, effort=10))]

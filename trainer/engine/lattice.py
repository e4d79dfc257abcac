"""Images whose colours lie on a rounded linear lattice, found per image and coded as its planes.

Why: a video player, a Photo CD reader or any converter that turns integer Y'CbCr-like planes into
RGB by one linear map and one rounding, RGB = round(M v + o), leaves every pixel on a lattice
several times sparser than RGB (det M ~ 4-7: log2 det M bits a pixel the RGB coder spends on
colours that never occur), and its chroma planes are smooth (often subsampled). Unlike
`trainer.engine.colour` (libjpeg's fixed tables), M and o are not known: the encoder finds them
from the image itself (`fit`), the payload carries them as integers, and the decoder applies
them with integer arithmetic, the same on every machine (`to_rgb`).

How `fit` finds them: the set of colours present, as a 256^3 indicator, has Fourier peaks at the
dual lattice M^-T Z^3 (seen modulo 1, as the colours are integers). Three independent peaks,
refined, give a basis; of their integer shifts the sparsest lattice that still explains every
sampled colour is the one (a denser one explains them too, a sparser one cannot); its basis is
recombined into the planes of least total variation. Then each colour's planes are read off, and
M, o per RGB channel by a linear programme: the exact map with the widest margin to the rounding
boundaries, put in fixed point and verified on every pixel. Clamped pixels (a channel at 0 or
255) have many preimages: the one nearest the left neighbour's planes is taken.
"""

import itertools
from dataclasses import dataclass

import numba
import numpy as np

SHIFT = 30  # fixed-point bits of the map: the fit's margin (>= ~1e-5) stays far above 2^-30 * 255 * 3
BYTES = 96  # 12 int64: the matrix row by row, then the offsets
LIMIT = 1 << 40  # larger entries are no map a fit makes (and could overflow int64): refused


class LatticeError(ValueError):
    """A payload's lattice is not one this decoder can apply."""


@dataclass(frozen=True)
class Lattice:
    """RGB = clamp((matrix @ planes + offset) >> SHIFT, 0, 255), planes three uint8 values."""
    matrix: np.ndarray  # (3, 3) int64
    offset: np.ndarray  # (3,) int64, the rounding half included

    def to_bytes(self) -> bytes:
        return np.concatenate([self.matrix.ravel(), self.offset]).astype(">i8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Lattice":
        if len(data) < BYTES:
            raise LatticeError(f"the payload holds {len(data)} of the lattice's {BYTES} bytes")
        values = np.frombuffer(data[:BYTES], dtype=">i8").astype(np.int64)
        if np.abs(values).max() >= LIMIT or abs(np.linalg.det(values[:9].reshape(3, 3).astype(float))) < 1:
            raise LatticeError("the payload's lattice is not an invertible map of bounded entries")
        return cls(values[:9].reshape(3, 3).copy(), values[9:].copy())


# ---- the decoder's map and its inverse (compiled) ----

@numba.njit(cache=True, nogil=True, inline="always")
def _rgb(p0, p1, p2, m, o, j):
    return min(255, max(0, (m[j, 0] * p0 + m[j, 1] * p1 + m[j, 2] * p2 + o[j]) >> SHIFT))


@numba.njit(cache=True, nogil=True, inline="always")
def _maps(p0, p1, p2, R, G, B, m, o):
    return _rgb(p0, p1, p2, m, o, 0) == R and _rgb(p0, p1, p2, m, o, 1) == G and _rgb(p0, p1, p2, m, o, 2) == B


@numba.njit(cache=True, nogil=True)
def _to_rgb(planes, out, m, o):
    for i in range(planes.shape[0]):
        for j in range(planes.shape[1]):
            p0, p1, p2 = np.int64(planes[i, j, 0]), np.int64(planes[i, j, 1]), np.int64(planes[i, j, 2])
            for c in range(3):
                out[i, j, c] = _rgb(p0, p1, p2, m, o, c)


@numba.njit(cache=True, nogil=True)
def _search(R, G, B, c0, c1, c2, radius, m, o):
    """The preimage nearest (c0, c1, c2) (Chebyshev shells up to `radius`) within 0..255, or -1s."""
    for r in range(radius + 1):
        for p0 in range(max(0, c0 - r), min(255, c0 + r) + 1):
            for p1 in range(max(0, c1 - r), min(255, c1 + r) + 1):
                for p2 in range(max(0, c2 - r), min(255, c2 + r) + 1):
                    if max(abs(p0 - c0), abs(p1 - c1), abs(p2 - c2)) == r and _maps(p0, p1, p2, R, G, B, m, o):
                        return p0, p1, p2
    return -1, -1, -1


@numba.njit(cache=True, nogil=True, inline="always")
def _guess(R, G, B, inverse, phase, k):
    """Plane k of the real inverse, rounded into 0..255."""
    return min(255, max(0, np.int64(np.floor(inverse[k, 0] * R + inverse[k, 1] * G + inverse[k, 2] * B - phase[k] + 0.5))))


@numba.njit(cache=True, nogil=True)
def _to_planes(image, out, m, o, inverse, phase):
    """Fill out's first three channels with a preimage of every pixel; False at the first pixel
    that has none. An unclamped pixel's preimage lies within 1 of the real inverse's guess."""
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            R, G, B = np.int64(image[i, j, 0]), np.int64(image[i, j, 1]), np.int64(image[i, j, 2])
            g0, g1, g2 = _guess(R, G, B, inverse, phase, 0), _guess(R, G, B, inverse, phase, 1), _guess(R, G, B, inverse, phase, 2)
            p0, p1, p2 = _search(R, G, B, g0, g1, g2, 1, m, o)
            if p0 < 0:
                if 0 < R < 255 and 0 < G < 255 and 0 < B < 255:
                    return False
                if j > 0:  # clamped: many preimages; the left neighbour's nearest codes cheaply
                    p0, p1, p2 = _search(R, G, B, out[i, j - 1, 0], out[i, j - 1, 1], out[i, j - 1, 2], 16, m, o)
                if p0 < 0:  # or the guess's nearest (a far-clamped colour's guess is off by more)
                    p0, p1, p2 = _search(R, G, B, g0, g1, g2, 40, m, o)
                if p0 < 0:
                    return False
            out[i, j, 0], out[i, j, 1], out[i, j, 2] = p0, p1, p2
    return True


def to_rgb(planes: np.ndarray, lattice: Lattice) -> np.ndarray:
    """The image with its first three channels (the lattice's planes) mapped to RGB."""
    out = planes.copy()
    _to_rgb(planes, out, lattice.matrix, lattice.offset)
    return out


def to_planes(image: np.ndarray, lattice: Lattice) -> np.ndarray | None:
    """(H, W, C >= 3) uint8 with its first three channels as planes that `to_rgb` maps back to the
    image exactly, or None if some pixel has no preimage."""
    real = lattice.matrix / float(1 << SHIFT)
    inverse = np.linalg.inv(real)
    phase = inverse @ ((lattice.offset - (1 << (SHIFT - 1))) / float(1 << SHIFT))
    out = image.copy()
    return out if _to_planes(image, out, lattice.matrix, lattice.offset, inverse, phase) else None


# ---- the encoder's fit ----

# a lattice's peaks stand at 0.3-0.6 of the DC term; the held-out photo crops' highest at 0.05-0.17,
# never three independent ones
PEAK_FLOOR = 0.1
SAMPLE = 256  # colours that judge each candidate lattice
# smaller images are not searched: too few colours pin a map, and its 96 bytes would eat the gain
MIN_PIXELS = 4096


def _colours(image: np.ndarray) -> np.ndarray:
    packed = np.unique((image[..., 0].astype(np.int64) << 16) | (image[..., 1].astype(np.int64) << 8) | image[..., 2])
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], 1)


def _peaks(colours: np.ndarray, count: int = 24) -> list[np.ndarray]:
    """The strongest local maxima of the colour set's spectrum away from its envelope (cycles per
    level), strongest first."""
    import scipy.fft  # the encoder's alone: decoding needs no scipy

    indicator = np.zeros((256, 256, 256), np.float32)
    indicator[colours[:, 0], colours[:, 1], colours[:, 2]] = 1
    spectrum = np.abs(scipy.fft.rfftn(indicator, workers=-1))
    spectrum /= spectrum[0, 0, 0]
    full, half = np.fft.fftfreq(256), np.fft.rfftfreq(256)
    # the envelope (the colour cloud's own shape) fills the low frequencies; a lattice of steps
    # under 10 levels has its peaks beyond 0.1 cycles a level
    spectrum[(full[:, None, None] ** 2 + full[None, :, None] ** 2 + half[None, None, :] ** 2) < 0.1 ** 2] = 0
    strongest = np.argpartition(spectrum.ravel(), -4 * count)[-4 * count:]
    strongest = strongest[spectrum.ravel()[strongest] > PEAK_FLOOR]
    peaks = []
    for index in strongest[np.argsort(spectrum.ravel()[strongest])[::-1]]:
        at = np.array(np.unravel_index(index, spectrum.shape))
        near = spectrum[tuple(np.ix_(*[(at[d] + np.arange(-1, 2)) % spectrum.shape[d] for d in range(3)]))]
        if spectrum.ravel()[index] >= near.max() and len(peaks) < count:  # a local maximum
            peaks.append(np.array([full[at[0]], full[at[1]], half[at[2]]]))
    return peaks


def _strength(k: np.ndarray, colours: np.ndarray) -> complex:
    return np.exp(2j * np.pi * (colours @ k)).mean()


def _independent(peaks: list[np.ndarray]) -> list[np.ndarray]:
    """Three peaks, none a small integer combination (mod 1) of the ones before it."""
    basis = []
    for peak in peaks:
        spans = [sum(c * b for c, b in zip(coefs, basis)) for coefs in itertools.product(range(-2, 3), repeat=len(basis))]
        if not any(np.abs(d - np.round(d)).max() < 0.02 for q in spans for d in (peak - q, peak + q)):
            basis.append(peak)
            if len(basis) == 3:
                break
    return basis


def _sparsest(basis: np.ndarray, phase: np.ndarray, colours: np.ndarray) -> np.ndarray | None:
    """Of the basis's integer shifts (peaks are seen mod 1), the sparsest lattice that explains the
    sampled colours within rounding."""
    rng = np.random.default_rng(0)
    sample = colours[rng.choice(len(colours), min(SAMPLE, len(colours)), replace=False)].astype(float)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    rows = [basis[i] + shifts for i in range(3)]  # 27 each
    ks = np.stack(np.meshgrid(np.arange(27), np.arange(27), np.arange(27), indexing="ij"), -1).reshape(-1, 3)
    candidates = np.stack([rows[0][ks[:, 0]], rows[1][ks[:, 1]], rows[2][ks[:, 2]]], 1)  # (19683, 3, 3)
    dets = np.abs(np.linalg.det(candidates))
    ranked = np.argsort(dets)
    ranked = ranked[dets[ranked] > 1e-3]
    for chunk in np.array_split(ranked, 16):  # sparsest first; most images settle in the first
        k = candidates[chunk]
        planes = np.round(np.einsum("sj,nij->nsi", sample, k) - phase)
        back = np.einsum("nij,nsj->nsi", np.linalg.inv(k), planes + phase)
        explained = (np.abs(back - sample) <= 0.52).all(2).mean(1) >= 0.99
        if explained.any():
            return k[np.argmax(explained)]
    return None


def _refined(k: np.ndarray, phase: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The basis sharpened by least squares: colours whose planes read off cleanly, regressed on
    those planes (the rounding errors average out over thousands of colours)."""
    for _ in range(3):
        exact = colours @ k.T - phase
        planes = np.round(exact)
        clean = (np.abs(exact - planes) < 0.3).all(1)
        if clean.sum() < 32:
            break
        design = np.concatenate([planes[clean], np.ones((clean.sum(), 1))], 1)
        solution = np.linalg.lstsq(design, colours[clean], rcond=None)[0]  # colour = M planes + o
        k = np.linalg.inv(solution[:3].T)
        phase = k @ solution[3]
    return k, phase


def _natural(k: np.ndarray, phase: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lattice's basis recombined (unimodular, coefficients -2..2) into a converter's own planes
    (any basis codes exactly, those smallest): the steps that leave most channels unmoved (Cb
    leaves R, Cr leaves B), then the shortest; the plane of most total variation (luma) first."""
    primal = np.linalg.inv(k)  # colour = primal @ planes + const
    units = np.array([u for u in itertools.product(range(-2, 3), repeat=3) if u > (0, 0, 0)], float)
    steps = units @ primal.T  # each direction's unit step in RGB
    zeros = (np.abs(steps) < 1e-3).sum(1)  # a converter's planes leave channels out (Cb: R, Cr: B)
    lengths = np.linalg.norm(steps, axis=1)
    trios = np.array(list(itertools.combinations(range(len(units)), 3)))
    trios = trios[np.abs(np.round(np.linalg.det(units[trios]))) == 1]
    trio = trios[np.lexsort((lengths[trios].sum(1), -zeros[trios].sum(1)))[0]]
    signs = np.sign(steps[trio].sum(1))  # each plane rising with brightness (Cb with B, Cr with R)
    basis = np.linalg.inv(units[trio].T * signs)  # new planes = basis @ old planes
    k, phase = basis @ k, basis @ phase
    pixels = image[..., :3].astype(float)
    planes = np.round(pixels @ k.T - phase)
    variation = np.abs(np.diff(planes, axis=0)).mean((0, 1)) + np.abs(np.diff(planes, axis=1)).mean((0, 1))
    first = np.argsort(variation)[::-1]
    return k[first], phase[first]


def _widest(planes: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """The map (3 weights, offset, margin) that rounds every planes row to its value with the
    widest margin to the rounding boundaries, or None."""
    import scipy.optimize

    ones = np.ones((len(values), 1))
    a = np.concatenate([np.concatenate([-planes, -ones, ones], 1), np.concatenate([planes, ones, ones], 1)])
    b = np.concatenate([0.5 - values, values + 0.5])
    result = scipy.optimize.linprog(np.array([0, 0, 0, 0, -1.0]), A_ub=a, b_ub=b,
                                    bounds=[(None, None)] * 4 + [(None, 0.5)], method="highs")
    return result.x if result.status == 0 and result.x[4] > 1e-7 else None


def _exact(colours: np.ndarray, planes: np.ndarray) -> np.ndarray | None:
    """Per RGB channel the widest-margin map over every (planes, colour) pair, or None. Solved on a
    few thousand pairs, then again with the pairs it fails added, until it fails none."""
    rows = []
    for c in range(3):
        chosen = np.random.default_rng(2).choice(len(colours), min(len(colours), 4000), replace=False)
        for _ in range(8):
            x = _widest(planes[chosen], colours[chosen, c])
            if x is None:
                return None
            error = np.abs(planes @ x[:3] + x[3] - colours[:, c])
            failing = np.flatnonzero(error > 0.5 - x[4] / 2)
            if not len(failing):
                break
            chosen = np.union1d(chosen, failing[np.argsort(error[failing])[::-1][:2000]])
        else:
            return None
        rows.append(x[:4])
    return np.array(rows)


def fit(image: np.ndarray) -> tuple[Lattice, np.ndarray] | None:
    """The lattice the image's first three channels lie on and the image with its planes (within
    0..255) as those channels, or None (photos: too few spectral peaks, in well under a second)."""
    if image.shape[0] * image.shape[1] < MIN_PIXELS:
        return None
    colours = _colours(image)
    inner = colours[(colours > 0).all(1) & (colours < 255).all(1)]
    if len(inner) < 64 or np.linalg.svd(inner - inner.mean(0), compute_uv=False)[-1] < 1e-6 * len(inner):
        return None  # too few colours, or all on a plane (a gray ramp): no lattice to tell
    try:
        return _fit(image, colours, inner)
    except np.linalg.LinAlgError:  # a degenerate set of peaks
        return None


def _fit(image: np.ndarray, colours: np.ndarray, inner: np.ndarray) -> tuple[Lattice, np.ndarray] | None:
    import scipy.optimize

    basis = _independent(_peaks(colours))
    if len(basis) < 3:
        return None
    sample = inner[np.random.default_rng(1).choice(len(inner), min(len(inner), 8000), replace=False)]
    basis = np.array([scipy.optimize.minimize(lambda k: -abs(_strength(k, sample)), peak, method="Nelder-Mead",
                                              options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 400}).x
                      for peak in basis])
    phase = np.array([np.angle(_strength(k, sample)) / (2 * np.pi) for k in basis])
    k = _sparsest(basis, phase, inner)
    if k is None:
        return None
    k, phase = _natural(*_refined(k, phase, inner.astype(float)), image)
    planes = np.round(inner @ k.T - phase).astype(np.int64)
    low, high = planes.min(0), planes.max(0)
    if (high - low > 255).any():
        return None
    planes += 128 - (low + high + 1) // 2  # each plane centred in 0..255
    exact = _exact(inner.astype(float), planes.astype(float))
    if exact is None:
        return None
    scale = float(1 << SHIFT)
    lattice = Lattice(np.round(exact[:, :3] * scale).astype(np.int64),
                      np.round(exact[:, 3] * scale).astype(np.int64) + (1 << (SHIFT - 1)))
    planes = to_planes(image, lattice)
    return None if planes is None else (lattice, planes)

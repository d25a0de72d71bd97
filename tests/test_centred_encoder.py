"""The centred pixel encoder: copies moved by a pixel or two land on their source."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import adaprune
from adaprune.data import Dataset
from adaprune.embed.encoders import CentredPixelsEncoder, PixelsEncoder, centre_on_mass, get_encoder


def blobs(n: int, seed: int, side: int = 16) -> np.ndarray:
    """(n, 1, side, side) images of three Gaussian blobs each, kept 4 px from the border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.zeros((n, 1, side, side), dtype=np.float32)
    for i in range(n):
        for cy, cx in rng.uniform(5, side - 6, (3, 2)):
            out[i, 0] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0)
    return out


def moved(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return ndimage.shift(image, (0, dy, dx), order=0, mode="constant")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (2, 1), (-1, -1)])
def test_an_integer_move_is_undone_exactly(dy, dx):
    image = blobs(1, seed=3)[0]
    copy = moved(image, dy, dx)
    assert cosine(image, copy) < 0.9  # the move is visible to raw pixels
    a, b = centre_on_mass(np.stack([image, copy]))
    np.testing.assert_allclose(a, b, atol=2e-3)  # up to the blobs' tails cut at the border


def test_the_centre_of_mass_lands_at_the_centre_and_a_lifted_background_pulls_nothing():
    image = blobs(1, seed=4)[0]
    lifted = image + 0.2  # a change of light that lifts the whole frame
    for x in (image, lifted):
        out = centre_on_mass(x[None])[0, 0]
        fore = np.clip(out - np.median(np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])), 0, None)
        yy, xx = np.mgrid[:16, :16]
        assert abs((fore * yy).sum() / fore.sum() - 7.5) < 0.05
        assert abs((fore * xx).sum() / fore.sum() - 7.5) < 0.05


def test_signals_and_colour_images_shift_along_their_own_axes():
    signal = np.zeros((2, 1, 40), dtype=np.float32)
    signal[0, 0, 10:14] = 1.0
    signal[1, 0, 12:16] = 1.0  # the same pulse, 2 steps later
    a, b = centre_on_mass(signal)
    np.testing.assert_allclose(a, b, atol=1e-5)
    colour = np.repeat(blobs(1, seed=5), 3, axis=1) * np.array([1.0, 0.5, 0.25], dtype=np.float32)[None, :, None, None]
    out = centre_on_mass(np.concatenate([colour, moved(colour[0], 1, 2)[None]]))
    np.testing.assert_allclose(out[0], out[1], atol=2e-3)
    np.testing.assert_allclose(out[0, 1], out[0, 0] * 0.5, atol=1e-5)  # one shift for every channel


def test_the_spec_builds_the_encoder_and_checks_its_dimension():
    enc = get_encoder("centred:16")
    assert isinstance(enc, CentredPixelsEncoder) and enc.spec == "centred:16"
    with pytest.raises(adaprune.errors.ConfigError, match="encoder 'centred': dim must be an int >= 1, got '0'"):
        get_encoder("centred:0")


def test_semdedup_with_the_centred_encoder_removes_moved_copies_that_pixels_keeps():
    rng = np.random.default_rng(0)
    originals = blobs(60, seed=1)
    sources = rng.choice(60, 20, replace=False)
    copies = np.stack([moved(originals[s], *rng.choice([-2, -1, 1, 2], 2)) for s in sources])
    x = np.concatenate([originals, copies]).astype(np.float32)
    data = Dataset(name="blobs", x=x, y=np.zeros(len(x), dtype=np.int64))
    copy_rows = np.arange(60, 80)

    def copies_removed(encoder: str) -> int:
        sel = adaprune.prune(data, "semdedup", prune=20 / 80, seed=0, encoder=encoder)
        kept = set(sel.kept_indices.tolist())
        # a pair is resolved when exactly one of source and copy is kept
        return sum((s in kept) != (c in kept) for s, c in zip(sources, copy_rows, strict=True))

    centred, pixels = copies_removed("centred:16"), copies_removed("pixels:16")
    assert centred >= 19, centred
    assert pixels < centred


def test_centred_embeds_copies_next_to_their_source():
    originals = blobs(30, seed=2)
    copies = np.stack([moved(o, 1, -2) for o in originals])
    data = Dataset(name="blobs", x=np.concatenate([originals, copies]), y=np.zeros(60, dtype=np.int64))
    for cls, floor in ((CentredPixelsEncoder, 0.99), (PixelsEncoder, None)):
        enc = cls(8)
        enc.fit(data, seed=0, progress=False)
        emb = enc.encode(data.x)
        sims = [cosine(emb[i], emb[30 + i]) for i in range(30)]
        if floor is not None:
            assert min(sims) > floor
        else:
            assert np.median(sims) < 0.9

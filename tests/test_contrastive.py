"""The contrastive encoder: moved copies land near their source; seeded; registered as a spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaprune.data import Dataset
from adaprune.embed import get_encoder
from adaprune.embed.contrastive import Augment, augment, center, nt_xent, train_contrastive
from adaprune.errors import ConfigError


def strokes(n: int, rng: np.random.Generator, side: int = 8) -> np.ndarray:
    """n images of two random thick strokes each on black: sparse shapes, like digits."""
    img = np.zeros((n, side, side), dtype=np.float32)
    for i in range(n):
        for _ in range(2):
            r0, c0, r1, c1 = rng.integers(1, side - 1, 4)
            for t in np.linspace(0, 1, 3 * side):
                r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
                img[i, max(r - 1, 0) : r + 1, max(c - 1, 0) : c + 1] = 1.0
    return img


def moved(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A one-pixel shift (np.roll on a black border) plus a change of light and sensor noise."""
    dr, dc = rng.choice([-1, 1], 2)
    out = np.roll(np.roll(img, dr, axis=0), dc, axis=1)
    return np.clip(out * rng.uniform(0.85, 1.15) + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)


def cosine(a: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ a.T


def test_moved_copy_maps_nearer_its_source_than_other_samples():
    rng = np.random.default_rng(0)
    n = 32
    originals = strokes(n, rng)
    copies = np.stack([moved(o, rng) for o in originals])
    x = np.concatenate([originals, copies])[:, None]
    enc = train_contrastive(x, epochs=20, seed=0, batch_size=32, lr=3e-3, temperature=0.1, min_side=8,
                            aug=Augment(max_shift=1.0), progress=False)  # the moves here are of one pixel

    def share_nearest_source(emb: np.ndarray) -> float:
        sims = cosine(emb)[n:, :n]  # copy rows against the originals
        return float((sims.argmax(1) == np.arange(n)).mean())

    learned = share_nearest_source(enc.encode(x))
    pixels = share_nearest_source(x.reshape(2 * n, -1) - x.reshape(2 * n, -1).mean(0))
    assert learned >= 0.6 and learned > pixels + 0.4, (learned, pixels)
    # Seeded end to end: the same seed gives the same encoder.
    again = train_contrastive(x[:64], epochs=1, seed=3, batch_size=32, min_side=8, progress=False).encode(x[:8])
    assert np.array_equal(again, train_contrastive(x[:64], epochs=1, seed=3, batch_size=32, min_side=8,
                                                   progress=False).encode(x[:8]))


def test_nt_xent_and_augment_by_hand():
    z = torch.eye(4)[:2] * 10  # two samples, orthogonal; the scale is normalised away
    # Views equal: each view's partner has cosine 1, the two other views 0.
    assert float(nt_xent(z, z.clone(), 1.0)) == pytest.approx(np.log(1 + 2 / np.e), rel=1e-5)
    # Views swapped: the partner has cosine 0 and another sample's view 1.
    assert float(nt_xent(z, z.flip(0), 1.0)) == pytest.approx(np.log(2 + np.e), rel=1e-5)
    x = torch.zeros(3, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    out = augment(x, Augment(max_shift=0, max_degrees=0, jitter=0, noise=0), 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)  # no move: the identity warp


def test_registered_as_an_encoder_spec():
    enc = get_encoder("contrastive:2")
    assert enc.spec == "contrastive:2" and get_encoder("contrastive").spec == "contrastive:30"
    with pytest.raises(ConfigError, match=r"^encoder .contrastive.: epochs must be an int >= 1, got .0.$"):
        get_encoder("contrastive:0")
    vectors = Dataset(name="v", x=np.zeros((4, 2, 2, 2, 2), dtype=np.float32), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(ConfigError, match="images"):
        enc.fit(vectors, seed=0, progress=False)


def test_center_puts_the_centre_of_mass_in_the_middle():
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 1:3, 1:3] = 1.0  # a 2 x 2 blob whose centre of mass is (1.5, 1.5)
    x[1, 0, 4:6, 3:5] = 1.0  # the same blob moved by (3, 2) pixels
    out = center(x)
    # The frame's middle is (3.5, 3.5): both blobs land on rows and columns 3 and 4, exactly.
    expected = torch.zeros(8, 8)
    expected[3:5, 3:5] = 1.0
    assert torch.allclose(out[0, 0], expected, atol=1e-5) and torch.allclose(out[1, 0], expected, atol=1e-5)
    # A sample already centred is left as it is.
    assert torch.allclose(center(out), out, atol=1e-5)


def test_trains_on_a_seeded_subset_past_max_samples():
    x = strokes(48, np.random.default_rng(1))[:, None]
    a = train_contrastive(x, epochs=1, seed=2, max_samples=32, batch_size=16, min_side=8, progress=False)
    # The subset is what it trains on: the same 32 rows given directly train the same encoder.
    rows = np.sort(np.random.default_rng(2).choice(48, 32, replace=False))
    c = train_contrastive(x[rows], epochs=1, seed=2, max_samples=32, batch_size=16, min_side=8, progress=False)
    assert np.array_equal(a.encode(x), c.encode(x))
    full = train_contrastive(x, epochs=1, seed=2, batch_size=16, min_side=8, progress=False)
    assert not np.array_equal(a.encode(x), full.encode(x))

from __future__ import annotations

import numpy as np
import pytest

import adaprune.methods.cgscore as cg_mod
from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.cgscore import arccos_kernel, cg_scores, class_blocks, complexity_gap_loo, normalize_rows
from tests.conftest import make_blobs


def test_kernel_by_hand():
    x = normalize_rows(np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0], [-3.0, 0.0], [0.0, 0.0]]))
    h = arccos_kernel(x)
    # unit rows: H_ii = 1/2; orthogonal: 0; 45 degrees: cos(pi/4) (pi - pi/4) / (2 pi); opposite: 0
    np.testing.assert_allclose(np.diag(h), [0.5, 0.5, 0.5, 0.5, 0.0])
    assert h[0, 1] == pytest.approx(0.0, abs=1e-15)
    assert h[0, 2] == pytest.approx(np.sqrt(0.5) * 0.75 * np.pi / (2 * np.pi))
    assert h[0, 3] == pytest.approx(0.0, abs=1e-15)
    assert h[1, 3] == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_array_equal(h, h.T)
    np.testing.assert_allclose(np.linalg.norm(normalize_rows(np.ones((3, 2, 2))), axis=1), 1.0)


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_leave_one_out_identity_against_direct_inverses(ridge):
    rng = np.random.default_rng(0)
    x = normalize_rows(rng.normal(size=(12, 5)))
    y = np.where(np.arange(12) < 6, 1.0, -1.0)
    h = arccos_kernel(x)
    k = h + ridge * np.eye(12)
    full = y @ np.linalg.inv(k) @ y
    direct = []
    for i in range(12):
        keep = np.delete(np.arange(12), i)
        direct.append(full - y[keep] @ np.linalg.inv(k[np.ix_(keep, keep)]) @ y[keep])
    np.testing.assert_allclose(complexity_gap_loo(h, y, ridge=ridge), direct, rtol=1e-9, atol=1e-12)
    assert (np.array(direct) >= 0).all()  # removing a sample never raises y^T H^-1 y


def test_singular_kernel_without_ridge_is_a_clear_error():
    x = normalize_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ConfigError, match="ridge"):
        complexity_gap_loo(arccos_kernel(x), np.array([1.0, 1.0, -1.0]), ridge=0.0)
    assert np.isfinite(complexity_gap_loo(arccos_kernel(x), np.array([1.0, 1.0, -1.0]), ridge=1e-6)).all()


def test_blocks_are_bounded_and_cover_the_class():
    members = np.arange(10, 33)
    blocks = class_blocks(members, 10, np.random.default_rng(0))
    assert max(len(b) for b in blocks) <= 5 and np.array_equal(np.sort(np.concatenate(blocks)), members)


def test_no_inverse_exceeds_max_block_and_every_sample_is_scored(monkeypatch):
    sizes = []
    real = cg_mod.complexity_gap_loo

    def spy(h, y, *, ridge=0.0):
        sizes.append(len(y))
        assert (y == 1).sum() >= (y == -1).sum()  # a class chunk and at most as many others
        return real(h, y, ridge=ridge)

    monkeypatch.setattr(cg_mod, "complexity_gap_loo", spy)
    x, y = make_blobs(n=90, d=6, classes=3)
    scores = cg_scores(x, y, repetitions=2, max_block=20, seed=0)
    assert max(sizes) <= 20 and len(sizes) == 2 * 3 * 3  # 30 per class -> 3 chunks of 10
    assert np.isfinite(scores).all() and (scores > 0).all()


def test_duplicates_score_lowest_and_flipped_labels_highest():
    x, y = make_blobs(n=150, d=8, classes=3)
    x[1], x[81] = x[0], x[80]  # exact duplicates with the same label
    y[1], y[81] = y[0], y[80]
    flip = np.array([10, 20, 30, 40, 50])
    y[flip] = (y[flip] + 1) % 3
    scores = cg_scores(x, y, seed=0)
    assert set(np.argsort(scores)[:4]) == {0, 1, 80, 81}
    assert set(np.argsort(scores)[-5:]) == set(flip)


def test_single_class_and_bad_parameters():
    with pytest.raises(ConfigError, match="two classes"):
        cg_scores(np.ones((4, 2)), np.zeros(4, dtype=np.int64))
    for bad in ({"repetitions": 0}, {"max_block": 1}, {"ridge": -1.0}):
        with pytest.raises(ConfigError):
            build_method("cgscore", bad)
    m = build_method("cgscore")
    assert m.params() == {"repetitions": 3, "max_block": 2000, "ridge": 1e-6}
    assert m.higher_is_keep and not m.trains_model


def test_prune_budget_and_determinism_on_images():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = (rng.random((120, 1, 4, 4)) + y[:, None, None, None]).astype(np.float32)  # flattened inside
    ds = Dataset(name="imgs", x=x, y=y.astype(np.int64))
    a = prune(ds, "cgscore", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(ds, "cgscore", prune=0.3, seed=0, progress=False)
    c = prune(ds, "cgscore", prune=0.3, seed=1, progress=False)
    assert a.n_kept == 84 and np.array_equal(a.kept, b.kept) and np.array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)  # the other-class draws follow the seed

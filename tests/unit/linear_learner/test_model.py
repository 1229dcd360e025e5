"""The maths core on its own: losses, optimizers, regularisation, weights, selection, streams."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import r2_score, recall_score

from smalgos.errors import ClientError
from smalgos.formats.batch import Batch
from smalgos_linear_learner import losses as L
from smalgos_linear_learner.model import InputError, LinearLearner

FAST = dict(mini_batch_size=32, epochs=8)


def accuracy(est, X, y):
    return float(np.mean(est.predict(X) == y))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_every_optimizer_learns(cancer, optimizer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", optimizer=optimizer, num_models=4, **FAST).fit(Xtr, ytr)
    assert accuracy(est, Xte, yte) > 0.93
    assert est.selected_model_["optimizer"] == optimizer


def test_sgd_with_momentum_learns(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", optimizer="sgd", momentum=0.9, learning_rate=0.01, num_models=1,
                        **FAST).fit(Xtr, ytr)
    assert accuracy(est, Xte, yte) > 0.93


def test_hinge_loss_scores_are_margins(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", loss="hinge_loss", num_models=4, **FAST).fit(Xtr, ytr)
    assert accuracy(est, Xte, yte) > 0.93
    scores = est.predict_scores(Xte)
    assert scores.min() < 0 < 1 < scores.max()  # raw margins, not probabilities
    np.testing.assert_array_equal(est.predict(Xte), (scores >= est.threshold_).astype(np.float32))
    with pytest.raises(InputError, match="predict_proba"):
        est.predict_proba(Xte)


def test_logistic_scores_are_probabilities(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", num_models=2, **FAST).fit(Xtr, ytr)
    p = est.predict_proba(Xte)
    assert p.shape == (len(Xte), 2) and np.allclose(p.sum(1), 1) and 0 < est.threshold_ < 1


@pytest.mark.parametrize("loss", ["squared_loss", "absolute_loss", "huber_loss", "quantile_loss",
                                  "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss"])
def test_every_regression_loss_fits_diabetes(diabetes, loss):
    Xtr, Xte, ytr, yte = diabetes
    est = LinearLearner("regressor", loss=loss, huber_delta=50.0, loss_insensitivity=5.0, num_models=4,
                        **FAST).fit(Xtr, ytr)
    assert r2_score(yte, est.predict(Xte)) > 0.3


@pytest.mark.parametrize("loss", sorted(L.LOSS_FUNCTIONS))
def test_closed_form_gradients_match_autograd_at_kinks_too(loss):
    torch.manual_seed(0)
    if loss == "softmax_loss":
        z, y = torch.randn(40, 3, 4), torch.randint(0, 4, (40,))
    else:
        y = torch.randint(0, 2, (40, 1)).float() if loss in L.BINARY_LOSSES else torch.randn(40, 1)
        z = torch.randn(40, 3)
        z[:4] = y[:4]  # e = 0: abs, quantile's meeting lines
        z[4:8] = y[4:8] + 0.5  # eps_insensitive's and huber's kinks for eps = delta = 0.5
        z[8:12] = 2 * y[8:12] - 1  # hinge's kink for margin 1
    kw = {"margin": 1.0, "quantile": 0.3, "eps": 0.5, "delta": 0.5}
    zz = z.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(L.LOSS_FUNCTIONS[loss](zz, y, **kw).sum(), zz)
    torch.testing.assert_close(L.GRADIENTS[loss](z, y, **kw), expected, rtol=1e-6, atol=1e-6)


def _line(n=2000, seed=0, noise=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    e = rng.normal(size=n) if noise is None else noise(rng, n)
    return x, (3 * x[:, 0] + 1 + e).astype(np.float32)


def test_quantile_loss_estimates_the_quantile():
    X, y = _line()
    est = LinearLearner("regressor", loss="quantile_loss", quantile=0.9, num_models=4, mini_batch_size=64,
                        epochs=10).fit(X, y)
    assert 0.86 < np.mean(y <= est.predict(X)) < 0.94


def test_absolute_loss_estimates_the_median_under_skewed_noise():
    X, y = _line(noise=lambda rng, n: rng.exponential(2.0, n))  # mean 2, median 2 ln 2
    med = LinearLearner("regressor", loss="absolute_loss", num_models=4, mini_batch_size=64, epochs=10).fit(X, y)
    mean = LinearLearner("regressor", num_models=4, mini_batch_size=64, epochs=10).fit(X, y)
    assert abs(float(med.intercept_[0]) - (1 + 2 * np.log(2))) < 0.15
    assert abs(float(mean.intercept_[0]) - 3.0) < 0.15


def test_huber_resists_outliers_better_than_squared_loss():
    def noise(rng, n):
        e = rng.normal(scale=0.1, size=n)
        e[: n // 20] += 100.0  # 5 % gross outliers
        return e
    X, y = _line(noise=noise)
    kw = dict(num_models=4, mini_batch_size=64, epochs=10)
    huber = LinearLearner("regressor", loss="huber_loss", huber_delta=1.0, **kw).fit(X, y)
    squared = LinearLearner("regressor", **kw).fit(X, y)
    assert abs(huber.coef_[0, 0] - 3) < 0.3
    assert abs(huber.intercept_[0] - 1) < abs(squared.intercept_[0] - 1)


def test_l1_is_proximal_and_gives_exact_zeros():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 40)).astype(np.float32)
    y = (X[:, :3] @ np.array([2.0, -1.0, 1.5]) + 0.1 * rng.normal(size=1000)).astype(np.float32)
    kw = dict(num_models=1, wd=0.0, mini_batch_size=50, epochs=10, learning_rate=0.05)
    sparse = LinearLearner("regressor", l1=0.02, **kw).fit(X, y)
    dense = LinearLearner("regressor", l1=0.0, **kw).fit(X, y)
    assert np.count_nonzero(sparse.coef_[3:]) <= 5 < np.count_nonzero(dense.coef_[3:])
    assert np.all(sparse.coef_[:3, 0] != 0)


def test_wd_shrinks_weights(cancer):
    Xtr, _, ytr, _ = cancer
    kw = dict(num_models=1, l1=0.0, **FAST)
    free = LinearLearner("binary_classifier", wd=0.0, **kw).fit(Xtr, ytr)
    tied = LinearLearner("binary_classifier", wd=0.1, **kw).fit(Xtr, ytr)
    assert np.linalg.norm(tied.coef_ * tied.scaler_std_[:, None]) < 0.5 * np.linalg.norm(
        free.coef_ * free.scaler_std_[:, None])


def _imbalanced(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.normal(size=n) > 1.8).astype(np.float32)  # about 7 % positives
    return X, y


def test_positive_example_weight_mult_raises_recall():
    X, y = _imbalanced()
    kw = dict(num_models=1, binary_classifier_model_selection_criteria="loss_function", mini_batch_size=64,
              epochs=6)
    plain = LinearLearner("binary_classifier", **kw).fit(X, y)
    weighted = LinearLearner("binary_classifier", positive_example_weight_mult=10.0, **kw).fit(X, y)
    assert recall_score(y, weighted.predict(X)) > recall_score(y, plain.predict(X)) + 0.2


def test_balanced_and_auto_positive_weights():
    X, y = _imbalanced()
    ratio = float(np.sum(y == 0) / np.sum(y == 1))
    est = LinearLearner("binary_classifier", positive_example_weight_mult="balanced", num_models=2,
                        mini_batch_size=64, epochs=2).fit(X, y)
    assert all(m["positive_example_weight_mult"] == pytest.approx(ratio) for m in est.models_)
    est = LinearLearner("binary_classifier", positive_example_weight_mult="auto", mini_batch_size=64,
                        epochs=2).fit(X, y)
    weights = {round(m["positive_example_weight_mult"], 6) for m in est.models_}
    assert weights == {1.0, round(ratio, 6)}


def test_balance_multiclass_weights_raises_minority_recall():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [1.2, 0], [0, 1.2]])
    y = rng.choice(3, size=3000, p=[0.9, 0.05, 0.05])
    X = (centers[y] + rng.normal(size=(3000, 2))).astype(np.float32)
    kw = dict(num_classes=3, num_models=2, mini_batch_size=64, epochs=5)
    plain = LinearLearner("multiclass_classifier", **kw).fit(X, y)
    balanced = LinearLearner("multiclass_classifier", balance_multiclass_weights=True, **kw).fit(X, y)
    minority = y != 0
    assert np.mean(balanced.predict(X)[minority] == y[minority]) > np.mean(plain.predict(X)[minority] == y[minority]) + 0.2


def test_precision_at_target_recall_meets_the_target_on_calibration_data(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", binary_classifier_model_selection_criteria="precision_at_target_recall",
                        target_recall=0.99, num_models=4, **FAST).fit(Xtr, ytr, validation=(Xte, yte))
    assert recall_score(yte, est.predict(Xte)) >= 0.99
    est = LinearLearner("binary_classifier", binary_classifier_model_selection_criteria="recall_at_target_precision",
                        target_precision=0.99, num_models=4, **FAST).fit(Xtr, ytr, validation=(Xte, yte))
    pred = est.predict(Xte)
    assert np.sum((pred == 1) & (yte == 1)) / max(1, np.sum(pred == 1)) >= 0.99


def test_early_stopping_and_history(cancer):
    Xtr, Xte, ytr, yte = cancer
    reports = []
    est = LinearLearner("binary_classifier", epochs=40, early_stopping_patience=1, num_models=2,
                        mini_batch_size=32).fit(Xtr, ytr, validation=(Xte, yte), callback=reports.append)
    assert est.epochs_trained_ < 40 and reports[-1].stop
    assert [r.epoch for r in reports] == list(range(len(reports)))
    r = reports[0]
    assert r.objective == "binary_classification_cross_entropy_objective" and r.criterion == "sampled_accuracy"
    assert r.records == len(Xtr) and r.validation_loss.shape == (2,)


def test_num_models_grid_orders_one_change_at_a_time():
    X, y = _line(n=200)
    est = LinearLearner("regressor", num_models=4, epochs=1).fit(X, y)
    lr, wd, l1 = zip(*[(m["learning_rate"], m["wd"], m["l1"]) for m in est.models_])
    assert (lr[0], wd[0], l1[0]) == (0.1, 0.0, 0.0)
    assert sum(a != lr[0] for a in lr) == sum(a != wd[0] for a in wd) == sum(a != l1[0] for a in l1) == 1
    assert len(LinearLearner("regressor", epochs=1).fit(X, y).models_) == 32
    est = LinearLearner("regressor", learning_rate=0.05, wd=0.0, l1=0.0, epochs=1).fit(X, y)
    assert [m["learning_rate"] for m in est.models_] == [0.05, 0.025, 0.1, 0.0125]
    assert est.models_[0]["learning_rate"] == 0.05


def test_use_bias_false_has_no_intercept():
    X, y = _line(n=500)
    est = LinearLearner("regressor", use_bias=False, num_models=2, mini_batch_size=50, epochs=3).fit(X, y)
    assert est.intercept_[0] == 0.0
    assert est.hyperparameters_["unbias_data"] is False


@pytest.mark.parametrize("init", [dict(init_method="normal", init_sigma=0.5), dict(init_method="uniform", init_scale=0.5),
                                  dict(init_bias=2.0), dict(use_lr_scheduler=False),
                                  dict(normalize_data=False, normalize_label=False)])
def test_initialisation_and_scaling_options_still_learn(cancer, init):
    Xtr, Xte, ytr, yte = cancer
    if init.get("normalize_data") is False:
        Xtr, Xte = Xtr / Xtr.max(0), Xte / Xtr.max(0)
    est = LinearLearner("binary_classifier", num_models=4, **FAST, **init).fit(Xtr, ytr)
    assert accuracy(est, Xte, yte) > 0.9


def test_sparse_input_equals_dense(cancer):
    Xtr, Xte, ytr, yte = cancer
    Xs = Xtr.copy()
    Xs[np.abs(Xs) < np.median(np.abs(Xs))] = 0.0  # half zeros
    kw = dict(num_models=3, mini_batch_size=32, epochs=3)
    dense = LinearLearner("binary_classifier", **kw).fit(Xs, ytr)
    sparse = LinearLearner("binary_classifier", **kw).fit(sp.csr_matrix(Xs), ytr)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sparse.predict_scores(sp.csr_matrix(Xte)), dense.predict_scores(Xte), atol=1e-5)


def test_stream_of_batches_equals_fit_and_seed_repeats(diabetes):
    Xtr, _, ytr, _ = diabetes
    kw = dict(num_models=3, mini_batch_size=32, epochs=3)
    a = LinearLearner("regressor", **kw).fit(Xtr, ytr)
    b = LinearLearner("regressor", **kw).fit(Xtr, ytr)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    passes = []

    def source():
        passes.append(1)
        for i in range(0, len(Xtr), 96):  # blocks larger than mini_batch_size are split
            yield Batch(Xtr[i:i + 96], ytr[i:i + 96])
    c = LinearLearner("regressor", **kw).fit_stream(source)
    np.testing.assert_allclose(c.coef_, a.coef_, rtol=1e-5)
    assert len(passes) == 1 + 3  # the scaler pass, then one per epoch


def test_should_stop_ends_training_with_a_usable_model(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", epochs=50, num_models=2, mini_batch_size=32)
    calls = iter(range(10**6))
    est.fit_stream(lambda: iter([(Xtr, ytr)]), should_stop=lambda: next(calls) > 20)
    assert est.epochs_trained_ < 50
    assert accuracy(est, Xte, yte) > 0.85


def test_bad_labels_and_shapes_are_client_errors(cancer):
    Xtr, Xte, ytr, _ = cancer
    with pytest.raises(ClientError, match="labels must be 0 or 1; found 2.0"):
        LinearLearner("binary_classifier", epochs=1).fit(Xtr, np.where(ytr > 0, 2, 0))
    with pytest.raises(ClientError, match="num_classes=3"):
        LinearLearner("multiclass_classifier", num_classes=3, epochs=1).fit(Xtr, np.arange(len(ytr)) % 4)
    with pytest.raises(ClientError, match="NaN"):
        LinearLearner("regressor", epochs=1).fit(np.full_like(Xtr, np.nan), ytr)
    with pytest.raises(ClientError, match="feature_dim is 10"):
        LinearLearner("regressor", feature_dim=10, epochs=1).fit(Xtr, ytr)
    est = LinearLearner("binary_classifier", epochs=1, num_models=1).fit(Xtr, ytr)
    with pytest.raises(ClientError, match="trained on 30 features .* has 29"):
        est.predict(Xte[:, :29])
    with pytest.raises(ValueError):  # InputError is also a ValueError, for notebook users
        est.predict(Xte[:, :29])


def test_parameter_errors_name_the_parameter():
    X, y = _line(n=50)
    with pytest.raises(ClientError, match="loss"):
        LinearLearner("regressor", loss="logistic").fit(X, y)
    with pytest.raises(ClientError, match="num_classes"):
        LinearLearner("multiclass_classifier").fit(X, y)
    with pytest.raises(ClientError, match="learning_rate"):
        LinearLearner("regressor", learning_rate=-1.0).fit(X, y)
    with pytest.raises(ClientError, match="mini_batch_size"):
        LinearLearner("regressor", mini_batch_size=0).fit(X, y)


def test_a_diverging_model_is_never_selected(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LinearLearner("binary_classifier", optimizer="sgd", learning_rate=1e4, bias_lr_mult=1.0,
                        num_models=4, **FAST).fit(Xtr, ytr)
    assert np.all(np.isfinite(est.coef_))


def test_a_model_that_diverged_everywhere_is_refused(cancer):
    Xtr, _, ytr, _ = cancer
    est = LinearLearner("binary_classifier", optimizer="sgd", learning_rate=1e38, init_scale=1e38, num_models=1,
                        epochs=1, mini_batch_size=32)
    with pytest.raises(ClientError, match="Training diverged") as info:
        est.fit(Xtr, ytr)
    for name in ("coef_", "learning_rate", "wd", "l1", "init_scale", "normalize_data"):
        assert name in str(info.value)
    with pytest.raises(Exception, match="not fitted"):
        est.predict(Xtr)


@pytest.mark.parametrize("tensor", ["weight", "bias"])
def test_load_refuses_non_finite_weights(tmp_path, cancer, tensor):
    from safetensors.numpy import load_file, save_file

    Xtr, _, ytr, _ = cancer
    LinearLearner("binary_classifier", num_models=1, **FAST).fit(Xtr, ytr).save(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(str(path))
    tensors[tensor] = tensors[tensor].copy()
    tensors[tensor].flat[0] = np.nan
    save_file(tensors, str(path), metadata={"format": "smalgos-linear-learner"})
    with pytest.raises(InputError, match="non-finite") as info:
        LinearLearner.load(tmp_path)
    assert str(path) in str(info.value)


def test_checkpoints_resume_where_training_stopped(tmp_path, diabetes):
    Xtr, _, ytr, _ = diabetes
    kw = dict(num_models=3, mini_batch_size=32, epochs=4, early_stopping_patience=10)
    source = lambda: iter([(Xtr, ytr)])  # noqa: E731
    full = LinearLearner("regressor", **kw).fit_stream(source, checkpoint_dir=tmp_path / "a")
    assert (tmp_path / "a" / "linear-learner-checkpoint.safetensors").exists()
    polls = iter(range(10**6))
    per_epoch = -(-len(Xtr) // 32)
    LinearLearner("regressor", **kw).fit_stream(  # interrupted during the third epoch
        source, checkpoint_dir=tmp_path / "b", should_stop=lambda: next(polls) >= 2 * per_epoch + 3)
    resumed = LinearLearner("regressor", **kw).fit_stream(source, checkpoint_dir=tmp_path / "b")
    assert resumed.epochs_trained_ == 4 and len(resumed.history_) == 2
    np.testing.assert_allclose(resumed.coef_, full.coef_, rtol=1e-6)
    other = LinearLearner("regressor", **{**kw, "wd": 0.5}).fit_stream(source, checkpoint_dir=tmp_path / "b")
    assert len(other.history_) == 4  # another configuration ignores the checkpoint


def test_a_checkpoint_written_halfway_is_ignored(tmp_path, diabetes, caplog):
    """A host stopped between the two renames leaves the weights of one epoch beside the state of
    the one before: the pair is not resumed from (that would mix two epochs), and no temporary
    file is left for SageMaker's checkpoint sync to upload."""
    import json

    Xtr, _, ytr, _ = diabetes
    kw = dict(num_models=2, mini_batch_size=32, epochs=3, early_stopping_patience=10)
    source = lambda: iter([(Xtr, ytr)])  # noqa: E731
    LinearLearner("regressor", **kw).fit_stream(source, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linear-learner-checkpoint.json",
                                                         "linear-learner-checkpoint.safetensors"]
    meta_path = tmp_path / "linear-learner-checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "epoch": meta["epoch"] - 1, "finished": False}))
    again = LinearLearner("regressor", **kw).fit_stream(source, checkpoint_dir=tmp_path)
    assert len(again.history_) == 3 and "a checkpoint written halfway" in caplog.text


def test_memory_estimate_follows_the_optimizer_and_refuses_before_allocating(monkeypatch):
    import torch

    from smalgos_linear_learner import trainer

    cpu = torch.device("cpu")
    copy = 4 * (1000 * 8 * 3 + 8 * 3)
    adam = trainer.memory_estimate(1000, 8, 3, "adam", 0.0, cpu)
    assert adam["weights"] == copy and adam["adam state"] == 2 * copy and adam["best copies"] == copy
    assert trainer.memory_estimate(1000, 8, 3, "rmsprop", 0.0, cpu)["rmsprop state"] == copy
    assert trainer.memory_estimate(1000, 8, 3, "sgd", 0.9, cpu)["sgd state"] == copy
    assert "sgd state" not in trainer.memory_estimate(1000, 8, 3, "sgd", 0.0, cpu)
    # an update's temporaries, as measured (trainer.BATCH_WORK_COPIES): adam's and rmsprop's
    # sqrt(v) + eps denominator and step come on top of sgd's
    assert adam["per-batch work"] == 8 * copy
    assert trainer.memory_estimate(1000, 8, 3, "rmsprop", 0.0, cpu)["per-batch work"] == 8 * copy
    assert trainer.memory_estimate(1000, 8, 3, "sgd", 0.9, cpu)["per-batch work"] == 6 * copy
    assert trainer.available_memory(cpu) is None or trainer.available_memory(cpu) > 0

    monkeypatch.setattr(trainer, "available_memory", lambda device: 1000)
    X = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    with pytest.raises(InputError, match=r"needs about .* only 0.00 GB of memory is available.*num_models=1"):
        LinearLearner("binary_classifier", epochs=1, optimizer="sgd", momentum=0.0).fit(X, y)

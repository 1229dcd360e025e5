"""The shared maths of K-Means, PCA and k-NN: distances, projections, devices, input checks."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist

from smalgos.errors import ClientError
from smalgos.maths.device import as_dense, as_torch, pick_device, to_numpy
from smalgos.maths.distances import chunk_rows, nearest, pairwise_sq_distances, top_k
from smalgos.maths.inputs import as_float32, check_features, minibatches
from smalgos.maths.projections import RandomProjection, fwht, next_power_of_two, sign_matrix

CPU = torch.device("cpu")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(103, 7)).astype(np.float32), rng.normal(size=(11, 7)).astype(np.float32)


def test_pairwise_matches_scipy(data):
    x, y = data
    d = to_numpy(pairwise_sq_distances(torch.from_numpy(x), torch.from_numpy(y)))
    np.testing.assert_allclose(d, cdist(x, y, "sqeuclidean"), rtol=1e-4, atol=1e-4)
    assert (d >= 0).all()


@pytest.mark.parametrize("chunk", [None, 1, 10, 1000])
def test_nearest_is_chunk_independent_and_exact(data, chunk):
    x, y = data
    idx, d2 = nearest(torch.from_numpy(x), torch.from_numpy(y), chunk=chunk)
    ref = cdist(x, y, "sqeuclidean")
    np.testing.assert_array_equal(to_numpy(idx), ref.argmin(1))
    np.testing.assert_allclose(to_numpy(d2), ref.min(1), rtol=1e-6, atol=1e-6)


def test_nearest_distance_is_recomputed_exactly_for_large_norms():
    c = torch.tensor([[1e4, 1e4]], dtype=torch.float32)
    x = c + torch.tensor([[3.0, 4.0]])
    _, d2 = nearest(x, c)
    assert float(d2[0]) == 25.0  # the |x|² - 2x·c + |c|² expansion alone is off by ~10 here


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_top_k_matches_brute_force(data, metric, chunk):
    x, y = data
    scores, idx = top_k(torch.from_numpy(y), torch.from_numpy(x), 5, metric, chunk=chunk)
    ref = cdist(y, x, "sqeuclidean") if metric == "l2" else -(y @ x.T)
    order = np.argsort(ref, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(to_numpy(idx), order)
    expect = np.take_along_axis(ref, order, 1) * (1 if metric == "l2" else -1)
    np.testing.assert_allclose(to_numpy(scores), expect, rtol=1e-4, atol=1e-4)


def test_top_k_clips_k_to_the_base(data):
    x, y = data
    scores, idx = top_k(torch.from_numpy(x), torch.from_numpy(y), 50)
    assert scores.shape == (103, 11) and idx.shape == (103, 11)


def test_chunk_rows_respects_the_budget():
    assert chunk_rows(1000, 4, budget=4000 * 10) == 10
    assert chunk_rows(10 ** 9) == 1


def test_fwht_is_the_orthonormal_hadamard_transform():
    from scipy.linalg import hadamard
    x = torch.randn(3, 16, dtype=torch.float64)
    np.testing.assert_allclose(to_numpy(fwht(x)), to_numpy(x) @ hadamard(16).T / 4, atol=1e-12)
    np.testing.assert_allclose(to_numpy(fwht(fwht(x))), to_numpy(x), atol=1e-12)  # its own inverse
    with pytest.raises(ValueError):
        fwht(torch.zeros(2, 12))


@pytest.mark.parametrize("kind", ["sign", "fjlt"])
def test_projections_preserve_norms_on_average_and_are_seeded(kind):
    x = torch.randn(2000, 50, dtype=torch.float64)
    p = RandomProjection.draw(kind, 50, 20, seed=3)
    y = p.transform(x)
    assert y.shape == (2000, 20)
    ratio = float((y ** 2).sum() / (x ** 2).sum())
    assert 0.9 < ratio < 1.1
    again = RandomProjection.from_state(kind, 50, 20, 3, p.state())
    torch.testing.assert_close(again.transform(x), y)
    same_seed = RandomProjection.draw(kind, 50, 20, seed=3)
    torch.testing.assert_close(same_seed.transform(x), y)
    with pytest.raises(ValueError):
        RandomProjection.from_state(kind, 51, 20, 3, p.state())


def test_sign_matrix_and_powers_of_two():
    m = sign_matrix(30, 40, seed=1)
    assert set(torch.unique(m).tolist()) == {-1.0, 1.0}
    assert next_power_of_two(1) == 1 and next_power_of_two(5) == 8 and next_power_of_two(64) == 64


def test_device_choice_and_conversions(monkeypatch):
    monkeypatch.setenv("SMALGOS_DEVICE", "cpu")
    assert pick_device() == CPU and pick_device("auto") == CPU
    monkeypatch.delenv("SMALGOS_DEVICE")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    x = sp.random(5, 4, density=0.5, format="csr", dtype=np.float32, random_state=0)
    s = as_torch(x, CPU)
    assert s.layout == torch.sparse_coo
    np.testing.assert_array_equal(to_numpy(s.to_dense()), x.toarray())
    np.testing.assert_array_equal(to_numpy(as_dense(x, CPU)), x.toarray())
    assert as_dense(np.ones((2, 2), np.float64), CPU).dtype == torch.float32


def test_input_checks():
    check_features(np.zeros((2, 3), np.float32), 3, "Channel 'train'")
    with pytest.raises(ClientError, match="records have 3 features but hyperparameter feature_dim is 4"):
        check_features(np.zeros((2, 3)), 4, "Channel 'train'")
    with pytest.raises(ClientError, match="1 feature value"):
        check_features(sp.csr_matrix(np.array([[0, np.inf]])), 2, "Request")
    assert as_float32([[1, 2]]).dtype == np.float32
    assert sp.issparse(as_float32(sp.csr_matrix(np.eye(2))))
    parts = list(minibatches(np.arange(10)[:, None], 4, y=np.arange(10)))
    assert [len(a) for a, _ in parts] == [4, 4, 2]

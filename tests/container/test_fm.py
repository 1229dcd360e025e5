"""The factorization-machines image under SageMaker Python SDK v2 local mode: fit on sparse
recordIO-protobuf (the SDK's `write_spmatrix_to_sparse_tensor`, File mode), deploy, predict with
the SDK's RecordSerializer / RecordDeserializer (what its FactorizationMachinesPredictor uses),
the answers checked against the model the job wrote."""

from __future__ import annotations

import io

import numpy as np
import pytest

from .test_more_algorithms import RECORDIO, deployed, extract, fit

pytestmark = pytest.mark.container


def test_fm_sparse_recordio_fit_then_recordio_scores_match_the_saved_model(algo_image, session, sdk_env, tmp_path):
    import scipy.sparse as sp
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer, write_spmatrix_to_sparse_tensor
    from safetensors.numpy import load_file

    image = algo_image("factorization-machines")
    # One-hot user × item pairs; a click when the user's and the item's parity agree (a pure
    # pairwise interaction: no linear term can learn it).
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 10, 2000), rng.integers(0, 10, 2000)
    x = sp.csr_matrix((np.ones(4000, np.float32), (np.repeat(np.arange(2000), 2), np.stack([users, 10 + items], 1).ravel())),
                      shape=(2000, 20))
    y = ((users % 2) == (items % 2)).astype(np.float32)
    buf = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buf, x, y)
    hps = {"feature_dim": 20, "num_factors": 4, "predictor_type": "binary_classifier", "epochs": 10,
           "mini_batch_size": 100, "bias_lr": 0.05, "linear_lr": 0.05, "factors_lr": 0.05, "factors_init_sigma": 0.1}
    est, model_tar = fit(session, sdk_env, image, hps, {"train": (RECORDIO, {"train.pbr": buf.getvalue()})})
    tensors = load_file(str(extract(model_tar, "model_algo-1.safetensors", tmp_path)))
    assert tensors["v"].shape == (20, 4) and tensors["w1_weight"].shape == (20,)

    queries = np.zeros((4, 20), np.float32)
    for row, (u, i) in enumerate([(0, 2), (1, 3), (0, 1), (3, 4)]):
        queries[row, [u, 10 + i]] = 1
    with deployed(est, RecordSerializer(), RecordDeserializer()) as predictor:
        records = predictor.predict(queries)
    scores = np.array([r.label["score"].float32_tensor.values[0] for r in records])
    labels = np.array([r.label["predicted_label"].float32_tensor.values[0] for r in records])
    w0, w, v = tensors["w0_weight"], tensors["w1_weight"], tensors["v"]
    s1 = queries @ v
    raw = w0 + queries @ w + 0.5 * ((s1 ** 2).sum(1) - ((queries ** 2) @ (v ** 2)).sum(1))
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw)), rtol=1e-5)
    np.testing.assert_array_equal(labels, [1, 1, 0, 0])

"""The lda image under SageMaker Python SDK v2 local mode, as a user would drive it: `fit` on
sparse recordIO-protobuf word counts (the SDK's own writer) with a `test` channel, `deploy`,
`predict` with the SDK's RecordSerializer, the JSON answers checked against the model the job
wrote. One lean test (CI has two cores): a few hundred short documents from known topics."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from lda.data import griffiths_data, l1_errors, match_topics  # noqa: E402

pytestmark = pytest.mark.container

RECORDIO = "application/x-recordio-protobuf"


def sparse_recordio(x) -> bytes:
    from sagemaker.amazon.common import write_spmatrix_to_sparse_tensor

    buf = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buf, sp.csr_matrix(x, dtype=np.float32))
    return buf.getvalue()


def test_lda_sparse_recordio_fit_with_test_channel_then_json_topic_mixtures(algo_image, session, sdk_env,
                                                                           tmp_path):
    from sagemaker.amazon.common import RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from smalgos_lda.model import META_FILE, MODEL_FILE, SpectralLDA

    image = algo_image("lda")
    _, beta, docs, _ = griffiths_data(700, 80, 5, seed=0)
    # What the SDK's LDA(num_topics=5) sends, feature_dim and mini_batch_size set by record_set().
    hps = {"num_topics": 5, "feature_dim": 25, "mini_batch_size": 200, "alpha0": 1.0}
    est, model_tar = fit(session, sdk_env, image, hps,
                         {"train": (RECORDIO, {"train.pbr": sparse_recordio(docs[:600])}),
                          "test": (RECORDIO, {"test.pbr": sparse_recordio(docs[600:])})})
    for member in (MODEL_FILE, META_FILE):
        extract(model_tar, member, tmp_path)
    lda = SpectralLDA.load(tmp_path)
    assert l1_errors(beta, lda.beta_[match_topics(beta, lda.beta_)]).max() < 0.3  # every bar found
    output_tar = Path(str(model_tar).replace("model.tar.gz", "output.tar.gz"))
    if output_tar.exists():
        with tarfile.open(output_tar) as tar:
            assert "failure" not in {Path(m.name).name for m in tar.getmembers()}

    queries = docs[600:608].astype(np.float32)
    with deployed(est, RecordSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(queries)
    assert list(answer) == ["predictions"] and len(answer["predictions"]) == len(queries), answer
    got = np.array([p["topic_mixture"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, lda.transform(queries), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)

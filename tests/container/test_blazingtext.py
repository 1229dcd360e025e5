"""The blazingtext image as a user drives it under SageMaker Python SDK v2 local mode: supervised
text classification (`fit` with train and validation channels of `__label__` lines, `deploy`,
`predict` with the SDK's JSONSerializer and a `k` configuration), and Word2Vec skipgram on
gensim's bundled Lee corpus (the vectors served equal to the model's `vectors.txt`). Lean (CI has
two cores): a few thousand short lines, a few epochs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from blazingtext.data import as_text, order_set  # noqa: E402

pytestmark = pytest.mark.container

TEXT = "text/plain"


def test_supervised_fit_with_validation_then_json_top_k_labels(algo_image, session, sdk_env):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer

    image = algo_image("blazingtext")
    train, validation, held_out = order_set(3000, seed=0), order_set(500, seed=1), order_set(200, seed=2)
    est, _ = fit(session, sdk_env, image,
                 {"mode": "supervised", "word_ngrams": 2, "epochs": 10, "early_stopping": True, "patience": 4,
                  "min_epochs": 3, "learning_rate": 0.1},
                 {"train": (TEXT, {"train.txt": as_text(train)}),
                  "validation": (TEXT, {"validation.txt": as_text(validation)})})
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict({"instances": [" ".join(words) for _, *words in held_out],
                                    "configuration": {"k": 2}})
        # (Local mode's runtime client hands back a 4xx body as an answer: it never reads the status.)
        bad = predictor.predict({"instances": ["good not", 7]})
        zero_k = predictor.predict({"instances": ["good not"], "configuration": {"k": 0}})
        again = predictor.predict({"instances": ["w1 not good w2"]})  # the server keeps serving
    assert sorted(bad) == ["error", "message"] and "instance 1 is 7, not a string" in bad["message"], bad
    assert sorted(zero_k) == ["error", "message"] and "positive integer" in zero_k["message"], zero_k
    assert again[0]["label"] == ["__label__a"], again
    assert len(answer) == len(held_out)
    for row in answer:
        assert sorted(row) == ["label", "prob"] and sorted(row["label"]) == ["__label__a", "__label__b"], row
        assert row["prob"][0] >= row["prob"][1] and abs(sum(row["prob"]) - 1) < 1e-3, row
    accuracy = np.mean([row["label"][0] == label for row, (label, *_) in zip(answer, held_out)])
    assert accuracy > 0.9, accuracy  # only the word bigram tells the labels apart


def test_skipgram_fit_on_the_lee_corpus_then_json_vectors_equal_the_model(algo_image, session, sdk_env,
                                                                         tmp_path):
    from gensim.test.utils import datapath
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer

    image = algo_image("blazingtext")
    corpus = Path(datapath("lee_background.cor")).read_bytes()
    est, model_tar = fit(session, sdk_env / "skipgram", image,
                         {"mode": "skipgram", "vector_dim": 32, "epochs": 3, "min_count": 3, "evaluation": False},
                         {"train": (TEXT, {"lee.txt": corpus})})
    vectors = {}
    with open(extract(model_tar, "vectors.txt", tmp_path), encoding="utf-8") as f:
        count, dim = map(int, f.readline().split())
        for line in f:
            word, *values = line.rstrip("\n").split(" ")
            vectors[word] = np.array(values, dtype=np.float32)
    assert dim == 32 and count == len(vectors) > 1000
    words = ["government", "Australia", "not-a-word-of-the-corpus"]
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict({"instances": words})
    assert [row["word"] for row in answer] == words
    for row in answer[:2]:
        np.testing.assert_allclose(row["vector"], vectors[row["word"]], rtol=1e-6, atol=1e-6)
    assert answer[2]["vector"] == [0.0] * 32  # no subwords: an unknown word gets zeros

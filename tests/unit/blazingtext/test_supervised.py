"""BlazingText supervised mode: fastText's binary format (against gensim's reader and writer),
fastText's line encoding, the torch classifier on a generated set where word order decides the
label (word_ngrams=2 must beat 1), early stopping, the job through /opt/ml (text/plain and the
augmented manifest in Pipe mode), AWS's log and metric lines, and the serving answers."""
import io
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gensim = pytest.importorskip("gensim")

from gensim.models.fasttext import ft_hash_bytes, ft_ngram_hashes, load_facebook_model  # noqa: E402

import algo_helpers  # noqa: E402
from smalgos.declaration import load_algorithm  # noqa: E402
from smalgos.errors import ClientError  # noqa: E402
from blazingtext.data import as_text, order_set  # noqa: E402
from smalgos_blazingtext import fasttext_format as ff  # noqa: E402
from smalgos_blazingtext.serve import load_model  # noqa: E402
from smalgos_blazingtext.supervised import (  # noqa: E402
    SupervisedCore, huffman_paths, label_probabilities, predict,
)
from smalgos_blazingtext.word2vec import Word2VecCore  # noqa: E402

ALGO = load_algorithm("blazingtext")
@pytest.fixture(scope="module")
def data():
    return order_set(3000, 0), order_set(500, 1)


# -- fastText's format and encoding --------------------------------------------------------------

@pytest.mark.parametrize("word", ["fire", "héllo", "日本語", "a", "</s>", "__label__x"])
def test_hashes_are_fasttexts(word):
    assert ff.fnv1a(word) == ft_hash_bytes(word.encode())
    assert ff.char_ngram_hashes(f"<{word}>", 2, 5, 5000) == list(ft_ngram_hashes(word, 2, 5, 5000))


def test_gensims_fasttext_file_is_read_and_written_back_byte_for_byte(tmp_path):
    lines = [line.split() for line in as_text(order_set(300, 2)).decode().splitlines()]
    (tmp_path / "c.txt").write_text("\n".join(" ".join(line[1:]) for line in lines) + "\n")
    Word2VecCore(mode="cbow", vector_dim=8, epochs=1, min_count=1, subwords=True, buckets=500, workers=1,
                 min_char=2, max_char=4).fit(tmp_path / "c.txt").save(tmp_path)
    raw = (tmp_path / "vectors.bin").read_bytes()
    ours = ff.read(io.BytesIO(raw))
    theirs = load_facebook_model(str(tmp_path / "vectors.bin"))
    assert ours.words == theirs.wv.index_to_key and (ours.args.minn, ours.args.maxn, ours.args.bucket) == (2, 4, 500)
    np.testing.assert_array_equal(ours.input, np.vstack([theirs.wv.vectors_vocab, theirs.wv.vectors_ngrams]))
    np.testing.assert_array_equal(ours.output, theirs.syn1neg)
    out = io.BytesIO()
    ff.write(ours, out)
    assert out.getvalue() == raw
    # an unseen word: fastText's mean of its n-grams' rows, as gensim computes it
    np.testing.assert_allclose(ours.input[ours.subword_rows("goodness")].mean(0), theirs.wv["goodness"], rtol=1e-6)


def test_encode_is_line_ids_for_many_lines(data):
    core = SupervisedCore(vector_dim=4, word_ngrams=3, buckets=1000, min_count=30, epochs=1).fit(data[0][:200])
    model = core.model_
    lines = data[1][:50] + [["unseen", "words", "__label__a", "only"], [], ["__label__b"]]
    rows, offsets, labels = model.encode(lines)
    ends = np.append(offsets[1:], len(rows))
    for i, line in enumerate(lines):
        expected, expected_labels = model.line_ids(line)
        assert sorted(rows[offsets[i]:ends[i]].tolist()) == sorted(expected) and labels[i] == expected_labels
    assert model.line_ids(["__label__a"])[0] == [model.words.index("</s>")]  # every line ends with </s>


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(ff.FormatError, match="not a fastText model"):
        ff.read(io.BytesIO(b"\0" * 64))
    model = ff.FastTextModel(ff.Args(dim=2, bucket=0), ["</s>", "a"], np.array([3, 1]), ["__label__x"], np.array([3]),
                             np.ones((2, 2), np.float32), np.ones((1, 2), np.float32))
    buf = io.BytesIO()
    ff.write(model, buf)
    with pytest.raises(ff.FormatError, match="ends early"):
        ff.read(io.BytesIO(buf.getvalue()[:-3]))
    assert ff.read(io.BytesIO(buf.getvalue())).words == ["</s>", "a"]


def test_hierarchical_softmax_probabilities_sum_to_one():
    counts = [50, 20, 20, 7, 3, 1]
    paths = huffman_paths(counts)
    assert len(paths[0][0]) < len(paths[-1][0])  # frequent labels sit nearer the root
    model = ff.FastTextModel(ff.Args(dim=3, bucket=0, loss=ff.LOSS_HS), ["</s>", "x", "y"], np.array([9, 5, 5]),
                             [f"__label__{i}" for i in range(6)], np.array(counts),
                             np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32),
                             np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32))
    probs, _, _ = label_probabilities(model, [["x"], ["y", "x"], []])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


# -- the classifier --------------------------------------------------------------------------------

def test_word_bigrams_learn_what_word_order_says(data):
    train, test = data
    accuracy = {n: SupervisedCore(vector_dim=10, word_ngrams=n, buckets=20000, min_count=1, learning_rate=0.1,
                                  epochs=5).fit(train).accuracy(test) for n in (1, 2)}
    assert accuracy[2] > 0.97 and accuracy[1] < 0.6, accuracy  # measured: 1.0 and 0.49


def test_a_fixed_seed_repeats_and_labels_come_sorted(data):
    fit = lambda: SupervisedCore(vector_dim=6, buckets=5000, min_count=1, epochs=2, seed=3).fit(data[0][:500])  # noqa
    a, b = fit(), fit()
    np.testing.assert_array_equal(a.model_.input, b.model_.input)
    (labels, probs), = a.predict([["not", "good", "w1"]], k=5)
    assert labels == ["__label__a", "__label__b"] and probs[0] >= probs[1] and sum(probs) == pytest.approx(1)


def test_lines_with_several_labels_train_on_each(data):
    lines = [["__label__x", "__label__y", "w1", "w2"], ["__label__y", "w3"]] * 50
    core = SupervisedCore(vector_dim=4, buckets=100, min_count=1, epochs=3, learning_rate=0.5).fit(lines)
    (labels, probs), = core.predict([["w1", "w2"]], k=2)
    assert set(labels) == {"__label__x", "__label__y"} and min(probs) > 0.2


def test_early_stopping_keeps_the_best_epoch(data):
    train, test = data
    core = SupervisedCore(vector_dim=8, buckets=20000, min_count=1, learning_rate=0.1, epochs=12,
                          early_stopping=True, min_epochs=2, patience=1).fit(train, test)
    accuracies = [h["validation_accuracy"] for h in core.history_]
    assert core.epochs_run_ < 12 and len(accuracies) == core.epochs_run_
    assert core.accuracy(test) == max(accuracies) and core.best_epoch_ == int(np.argmax(accuracies))
    with pytest.raises(ClientError, match="early_stopping: early stopping needs a validation channel"):
        SupervisedCore(early_stopping=True).fit(train)


# -- the job and the endpoint ----------------------------------------------------------------------

TEXT = {"ContentType": "text/plain"}
SUP = {"mode": "supervised", "epochs": 5, "vector_dim": 10, "buckets": 20000, "min_count": 1,
       "learning_rate": 0.1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    train, test = data
    tmp = tmp_path_factory.mktemp("supervised")
    job, rc = algo_helpers.train_job("blazingtext", tmp, SUP, {"train": {"ContentType": "text/plain"},
                                                                "validation": {"ContentType": "text/plain"}},
                                     {("train", "train.txt"): as_text(train), ("validation", "v.txt"): as_text(test)})
    assert rc == 0, job.failure
    return job


def test_the_job_writes_model_bin_and_awss_lines(tmp_path, data, capfd, caplog):
    train, test = data
    job, rc = algo_helpers.train_job("blazingtext", tmp_path, {**SUP, "early_stopping": "True", "min_epochs": 1,
                                                               "patience": 1, "epochs": 8},
                                     {"train": TEXT, "validation": TEXT},
                                     {("train", "train.txt"): as_text(train), ("validation", "v.txt"): as_text(test)})
    assert rc == 0, job.failure
    assert sorted(p.name for p in job.paths.model_dir.iterdir()) == ["model.bin"]
    model = ff.FastTextModel.load(job.paths.model_dir / "model.bin")
    assert model.is_supervised and sorted(model.labels) == ["__label__a", "__label__b"]
    assert (model.args.word_ngrams, model.args.bucket, model.args.dim) == (2, 20000, 10)
    assert model.input.shape == (len(model.words) + 20000, 10)
    out, log = capfd.readouterr().out, caplog.text
    train_acc = float(re.search(ALGO.metric("train:accuracy").regex, out).group(1))
    valid_acc = float(re.search(ALGO.metric("validation:accuracy").regex, out).group(1))
    assert train_acc > 0.97 and valid_acc > 0.97
    for line in ("Running single machine CPU BlazingText training using supervised mode.",
                 "-------------- End of epoch: 1", "Validation accuracy: ", "Validation accuracy improved! Storing "
                 "best weights...", "Training finished.", "Number of train examples: 3000",
                 "Number of validation examples: 500", "Reached patience. Stopping early"):
        assert line in log, line
    assert out.index("#train_accuracy: ") < out.index("#validation_accuracy: ")


def test_augmented_manifest_in_pipe_mode(tmp_path, data):
    train, _ = data
    manifest = b"".join(json.dumps({"source": " ".join(line[1:]), "label": int(line[0] == "__label__b")}).encode()
                        + b"\n" for line in train)
    job, rc = algo_helpers.train_job("blazingtext", tmp_path, SUP,
                                     {"train": {"ContentType": "application/jsonlines", "TrainingInputMode": "Pipe"}},
                                     {}, pipe=("train", manifest))
    assert rc == 0, job.failure
    model = ff.FastTextModel.load(job.paths.model_dir / "model.bin")
    assert sorted(model.labels) == ["__label__0", "__label__1"]
    assert predict(model, [["w3", "not", "good"], ["good", "not", "w3"]])[0][0] == ["__label__0"]


@pytest.mark.parametrize("hps, channels, files, words", [
    ({**SUP, "early_stopping": "True"}, None, None, "early_stopping: early stopping needs a validation channel"),
    (SUP, None, {("train", "t.txt"): b"no labels here\n"}, "Channel 'train': no line has a label"),
    (SUP, {"train": {"ContentType": "application/jsonlines"}}, {("train", "m.json"): b'{"source": "a b"}\n'},
     "line 1 of the augmented manifest: expected {\"source\": \"text\", \"label\": 1}"),
    (SUP, {"train": {"ContentType": "application/jsonlines"}},
     {("train", "m.json"): b'{"source": "a", "label": "x"}\n'},
     "label 'x' is not an integer"),
])
def test_supervised_user_errors(tmp_path, data, hps, channels, files, words):
    files = files if files is not None else {("train", "t.txt"): as_text(data[0][:50])}
    job, rc = algo_helpers.train_job("blazingtext", tmp_path, hps, channels or {"train": {"ContentType": "text/plain"}},
                                     files)
    assert rc == 1 and job.failure.startswith("ClientError: ") and words in job.failure.splitlines()[0], job.failure


def test_serving_json_and_jsonlines(trained):
    client = algo_helpers.serving_client(ALGO, trained.paths.model_dir)
    model = ff.FastTextModel.load(trained.paths.model_dir / "model.bin")
    texts = ["w1 not good w2", "w1 good not w2"]
    r = client.post("/invocations", json={"instances": texts, "configuration": {"k": 2}})
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    expected = predict(model, [t.split() for t in texts], k=2)
    assert body == [{"label": labels, "prob": probs} for labels, probs in expected]
    assert body[0]["label"][0] == "__label__a" and body[1]["label"][0] == "__label__b"
    assert body[0]["prob"][0] > body[0]["prob"][1]
    r = client.post("/invocations", json={"instances": texts})  # k = 1 by default
    assert [len(item["label"]) for item in r.get_json()] == [1, 1]
    lines = b'{"source": "w1 not good"}\n{"source": "good not w9", "k": 2}\n'
    r = client.post("/invocations", data=lines, headers={"Content-Type": "application/jsonlines",
                                                          "Accept": "application/jsonlines"})
    assert r.status_code == 200 and r.mimetype == "application/jsonlines"
    out = [json.loads(line) for line in r.data.splitlines()]
    assert [list(o) for o in out] == [["prob", "label"]] * 2 and [len(o["label"]) for o in out] == [1, 2]
    assert out[0]["label"] == ["__label__a"] and out[1]["label"][0] == "__label__b"


@pytest.mark.parametrize("body, content_type, words", [
    (b'{"instances": ["a"], "configuration": {"k": 0}}', "application/json", '"k" 0 is not a positive integer'),
    (b'{"instances": ["a"], "configuration": {"k": "2"}}', "application/json", '"k" "2" is not a positive integer'),
    (b'{"instances": ["a"], "configuration": 3}', "application/json", '"configuration" must be an object'),
    (b'{"instances": [["a"]]}', "application/json", 'instance 0 is ["a"], not a string'),
    (b'{"sentences": ["a"]}', "application/json", 'expected {"instances"'),
    (b'{"source": "a"}\n{"text": "b"}\n', "application/jsonlines", 'line 2: expected {"source"'),
    (b'{"source": "a"}\nnot json\n', "application/jsonlines", "line 2 is not valid JSON"),
])
def test_supervised_bad_requests(trained, body, content_type, words):
    client = algo_helpers.serving_client(ALGO, trained.paths.model_dir)
    r = client.post("/invocations", data=body, headers={"Content-Type": content_type})
    assert r.status_code == 400 and words in r.get_json()["message"], r.data


def test_a_model_bin_of_word_vectors_is_not_served_as_a_classifier(tmp_path):
    (tmp_path / "c.txt").write_text("a b c a b\n" * 20)
    Word2VecCore(mode="cbow", vector_dim=4, epochs=1, min_count=1, workers=1).fit(tmp_path / "c.txt").save(tmp_path)
    (tmp_path / "vectors.bin").rename(tmp_path / "model.bin")
    (tmp_path / "vectors.txt").unlink()
    with pytest.raises(ClientError, match="model.bin holds word vectors, not a classifier"):
        load_model(tmp_path)

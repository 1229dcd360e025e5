"""BlazingText Word2Vec end to end through the /opt/ml contract on gensim's Lee corpus: the
artifacts (vectors.txt as gensim reads it, vectors.bin in fastText's format, eval.json), AWS's
log and metric lines, Pipe mode, subword vectors for unseen words, user errors in the failure
file, and the serving answers."""
import gzip
import json
import math
import re

import numpy as np
import pytest

gensim = pytest.importorskip("gensim", reason="BlazingText trains on gensim")

from gensim.models import KeyedVectors  # noqa: E402
from gensim.models.fasttext import load_facebook_model, load_facebook_vectors  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from gensim.utils import simple_preprocess  # noqa: E402

import algo_helpers  # noqa: E402
from smalgos.declaration import load_algorithm  # noqa: E402
from smalgos.errors import ClientError  # noqa: E402
from smalgos.localjob import LocalJob  # noqa: E402
from smalgos_blazingtext.evaluation import WS353_ALL, score_pairs, read_pairs, wordsim353_file  # noqa: E402
from smalgos_blazingtext.serve import load_model  # noqa: E402
from smalgos_blazingtext.word2vec import Word2VecCore, read_word2vec_text  # noqa: E402

ALGO = load_algorithm("blazingtext")
TEXT = {"ContentType": "text/plain"}
SMALL = {"epochs": 2, "vector_dim": 20, "min_count": 2}


@pytest.fixture(scope="module")
def corpus() -> bytes:
    """gensim's Lee background corpus (300 news stories, 60k words), one story per line, tokenised."""
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return "".join(" ".join(simple_preprocess(line)) + "\n" for line in f).encode()


def train_job(tmp_path, hps, corpus, channels=None, files=None, pipe=False):
    channels = channels or {"train": TEXT}
    files = files if files is not None else {("train", "corpus.txt"): corpus}
    return algo_helpers.train_job("blazingtext", tmp_path, hps, channels, files,
                                  pipe=("train", corpus) if pipe else None)


@pytest.fixture(scope="module")
def skipgram(tmp_path_factory, corpus):
    tmp = tmp_path_factory.mktemp("skipgram")
    job, rc = train_job(tmp, {"mode": "skipgram", **SMALL}, corpus)
    assert rc == 0, job.failure
    return job.paths.model_dir


@pytest.fixture(scope="module")
def subwords(tmp_path_factory, corpus):
    tmp = tmp_path_factory.mktemp("subwords")
    job, rc = train_job(tmp, {"mode": "cbow", "subwords": "True", "buckets": 20000, "min_char": 3,
                              "max_char": 5, **SMALL}, corpus)
    assert rc == 0, job.failure
    return job.paths.model_dir


def test_the_artifacts_are_awss_and_agree(skipgram):
    assert sorted(p.name for p in skipgram.iterdir()) == ["eval.json", "vectors.bin", "vectors.txt"]
    header = (skipgram / "vectors.txt").read_text().split("\n", 1)[0]
    text = KeyedVectors.load_word2vec_format(str(skipgram / "vectors.txt"), binary=False)
    assert header == f"{len(text)} 20" and len(text) > 1000
    assert text.index_to_key[:3] == ["the", "to", "of"]  # most frequent first
    binary = load_facebook_vectors(str(skipgram / "vectors.bin"))  # fastText's format
    assert binary.index_to_key == text.index_to_key and binary.bucket == 0 and binary.max_n == 0
    np.testing.assert_array_equal(binary.vectors, text.vectors)
    full = load_facebook_model(str(skipgram / "vectors.bin"))
    assert full.sg == 1 and full.negative == 5 and full.window == 5 and full.syn1neg.shape == text.vectors.shape


def test_vectors_txt_holds_the_trained_vectors_exactly(tmp_path, corpus):
    (tmp_path / "c.txt").write_bytes(corpus)
    core = Word2VecCore(mode="cbow", vector_dim=16, epochs=1, min_count=3, workers=1).fit(tmp_path / "c.txt")
    core.save(tmp_path / "model")
    text = KeyedVectors.load_word2vec_format(str(tmp_path / "model" / "vectors.txt"))
    assert text.index_to_key == core.vectors_.index_to_key
    np.testing.assert_array_equal(text.vectors, core.vectors_.vectors)
    words, vectors = read_word2vec_text(tmp_path / "model" / "vectors.txt")  # what the evaluation reads
    assert words == text.index_to_key
    np.testing.assert_array_equal(vectors, text.vectors)
    binary = load_facebook_model(str(tmp_path / "model" / "vectors.bin"))
    np.testing.assert_array_equal(binary.wv.vectors, core.vectors_.vectors)
    np.testing.assert_array_equal(binary.syn1neg, core.model_.syn1neg)  # the output vectors too


def test_evaluation_is_printed_as_aws_prints_it(tmp_path, corpus, capfd, caplog):
    job, rc = train_job(tmp_path, {"mode": "skipgram", **SMALL}, corpus)
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    result = json.loads((job.paths.model_dir / "eval.json").read_text())
    assert set(result) == {WS353_ALL, "mean_rho"}  # the only WS-353 subset the image can compute
    ws = result[WS353_ALL]
    assert ws["total_pairs"] == 353 and 0 < ws["not_found"] < 353
    assert math.isfinite(ws["spearmans_rho"]) and result["mean_rho"] == ws["spearmans_rho"]
    lines = re.findall(r"^#mean_rho: (\S+)$", out, flags=re.M)
    assert lines == [repr(result["mean_rho"])]
    assert float(re.search(ALGO.metric("train:mean_rho").regex, out).group(1)) == result["mean_rho"]
    log = caplog.text
    for line in ("Running single machine CPU BlazingText training using skipgram mode.",
                 "Training finished.", "Average throughput in Million words/sec: ",
                 "Total training time in seconds: ", "Evaluating word embeddings....",
                 f"Vectors read from: {job.paths.model_dir / 'vectors.txt'}"):
        assert line in log, line
    assert len(re.findall(r"##### Alpha: \S+  Progress: \S+%  Million Words/sec: \S+ #####", log)) == 2


def test_rho_is_gensims_own_evaluation(skipgram):
    """Our WS-353 scorer against gensim's evaluate_word_pairs on the same vectors."""
    vectors = KeyedVectors.load_word2vec_format(str(skipgram / "vectors.txt"))
    ours = score_pairs(vectors.index_to_key, vectors.vectors, read_pairs(wordsim353_file()))
    _, (rho, _), oov = vectors.evaluate_word_pairs(str(wordsim353_file()), restrict_vocab=len(vectors))
    assert ours["spearmans_rho"] == pytest.approx(rho, abs=1e-9)
    assert ours["not_found"] == round(oov * 353 / 100)


def test_evaluation_false_writes_no_eval(tmp_path, corpus, capfd):
    job, rc = train_job(tmp_path, {"mode": "cbow", "evaluation": "False", **SMALL}, corpus)
    assert rc == 0, job.failure
    assert not (job.paths.model_dir / "eval.json").exists() and "#mean_rho" not in capfd.readouterr().out


def test_pipe_mode_gzip_and_several_files(tmp_path, corpus):
    lines = corpus.splitlines(keepends=True)
    job, rc = train_job(tmp_path / "pipe", {"mode": "skipgram", **SMALL}, corpus,
                        channels={"train": {**TEXT, "TrainingInputMode": "Pipe"}}, pipe=True)
    assert rc == 0, job.failure
    piped = KeyedVectors.load_word2vec_format(str(job.paths.model_dir / "vectors.txt"))
    split = {("train", "a/part1.txt.gz"): gzip.compress(b"".join(lines[:150])),
             ("train", "b/part2.txt"): b"".join(lines[150:]).rstrip(b"\n")}
    job, rc = train_job(tmp_path / "files", {"mode": "skipgram", **SMALL}, corpus, files=split)
    assert rc == 0, job.failure
    files = KeyedVectors.load_word2vec_format(str(job.paths.model_dir / "vectors.txt"))
    assert piped.index_to_key == files.index_to_key  # the same words, counted the same


def test_subword_vectors_for_unseen_words(subwords):
    model = load_facebook_model(str(subwords / "vectors.bin"))
    assert (model.wv.min_n, model.wv.max_n, model.wv.bucket, model.sg) == (3, 5, 20000, 0)
    text = KeyedVectors.load_word2vec_format(str(subwords / "vectors.txt"))
    np.testing.assert_allclose(model.wv.vectors, text.vectors, rtol=1e-6, atol=1e-7)
    served = load_model(subwords)
    unseen = "bushfirefighters"
    assert unseen not in text.key_to_index
    vector = served.vector(unseen)
    assert np.abs(vector).sum() > 0
    np.testing.assert_allclose(vector, model.wv[unseen], rtol=1e-6)


def test_serving_bodies(skipgram):
    client = algo_helpers.serving_client(ALGO, skipgram)
    text = KeyedVectors.load_word2vec_format(str(skipgram / "vectors.txt"))
    r = client.post("/invocations", data=json.dumps({"instances": ["fire", "qwertyuiop", "the"]}),
                    headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert [list(item) for item in body] == [["vector", "word"]] * 3  # AWS's shape: an array, no wrapper
    assert [item["word"] for item in body] == ["fire", "qwertyuiop", "the"]
    np.testing.assert_array_equal(np.float32(body[0]["vector"]), text["fire"])
    assert body[1]["vector"] == [0.0] * 20  # unknown word, no subwords: zeros
    np.testing.assert_array_equal(np.float32(body[2]["vector"]), text["the"])
    raw = client.post("/invocations", data=b'{"instances": ["the"]}', content_type="application/json").data
    assert raw.startswith(b'[{"vector":[') and raw.endswith(b'],"word":"the"}]')


@pytest.mark.parametrize("body, content_type, accept, status, words", [
    (b"[", "application/json", None, 400, "request body is not valid JSON"),
    (b'{"words": ["a"]}', "application/json", None, 400, 'expected {\\"instances\\": [\\"word\\", ...]}'),
    (b'["a", "b"]', "application/json", None, 400, 'expected {\\"instances\\"'),
    (b'{"instances": ["a", 3]}', "application/json", None, 400, "instance 1 is 3, not a string"),
    (b'{"instances": []}', "application/json", None, 400, "holds no records"),
    (b"", "application/json", None, 400, "holds no records"),
    (b"a b c", "text/plain", None, 415,
     "content type 'text/plain' is not supported; supported: application/json, application/jsonlines"),
    (b'{"source": "a"}', "application/jsonlines", None, 415, "not supported by a Word2Vec model"),
    (b'{"instances": ["a"]}', "application/json; charset=latin-1", None, 415, "only utf-8 is read"),
    (b'{"instances": ["a"]}', "application/json", "text/csv", 406,
     "none of the types in Accept 'text/csv' is supported; supported: application/json, application/jsonlines"),
])
def test_bad_requests(skipgram, body, content_type, accept, status, words):
    client = algo_helpers.serving_client(ALGO, skipgram)
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    r = client.post("/invocations", data=body, headers=headers)
    assert r.status_code == status and r.mimetype == "application/json"
    assert words in r.data.decode() and set(r.get_json()) == {"error", "message"}


def test_a_model_directory_without_vectors_is_refused(tmp_path):
    with pytest.raises(ClientError, match=r"expected vectors.bin .* or vectors.txt \(Word2Vec\), or model.bin"):
        load_model(tmp_path)
    (tmp_path / "vectors.bin").write_bytes(b"not a fastText model")
    with pytest.raises(ClientError, match="vectors.bin is not a fastText model file"):
        load_model(tmp_path)


@pytest.mark.parametrize("hps, channels, files, words", [
    ({"mode": "skipgram"}, None, {("train", "a.txt"): b"\n \n"}, "Channel 'train': no text found"),
    ({"mode": "skipgram"}, None, {("train", "a.txt"): b"ok line\nbad \xff byte\n"},
     "a.txt: line 2 is not UTF-8 text"),
    ({"mode": "skipgram", "min_count": 100000}, None, None, "no word occurs at least min_count=100000 times"),
    ({"mode": "skipgram"}, {"train": TEXT, "validation": TEXT}, None,
     "Channel 'validation' is read in mode supervised only"),
    ({"mode": "skipgram"}, {"train": {"ContentType": "application/jsonlines"}}, None,
     "Channel 'train': application/jsonlines (an augmented manifest of labelled lines) is read in mode "
     "supervised only"),
    ({"mode": "cbow", "subwords": "True", "min_char": 4, "max_char": 3}, None, None, "min_char (4) and max_char (3)"),
    ({"mode": "skipgram"}, {"train": {"ContentType": "text/csv"}}, None,
     "Channel 'train': content type 'text/csv' is not supported; supported: text/plain"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, corpus, hps, channels, files, words):
    if channels and "validation" in channels:
        files = {("train", "c.txt"): corpus, ("validation", "v.txt"): corpus}
    job, rc = train_job(tmp_path, hps, corpus, channels=channels, files=files)
    assert rc == 1 and job.failure.startswith("ClientError: ") and words in job.failure.splitlines()[0], job.failure


def test_word2vec_modes_train_on_one_host(tmp_path, corpus):
    job = LocalJob(tmp_path)
    job.write_config({"mode": "cbow"}, {"train": TEXT}, resources={
        "current_host": "algo-1", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"})
    job.add_file("train", "c.txt", corpus)
    from smalgos.training.runner import run_training
    assert run_training("blazingtext", job.paths, install_signal_handler=False) == 1
    assert "BlazingText mode cbow trains on a single instance only; this job has 2 hosts" in job.failure

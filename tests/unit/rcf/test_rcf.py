"""Random Cut Forest end to end through the /opt/ml contract, plus the maths core: the trees' shape,
the score against a plain-Python reading of AWS's formula, and quality on injected anomalies."""
import functools
import io
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

import algo_helpers
from algo_helpers import csv_bytes, recordio_bytes, serving_client
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos_randomcutforest.forest import Reservoirs, build_forest
from smalgos_randomcutforest.model import META_FILE, MODEL_FILE, RandomCutForest

ALGO = load_algorithm("randomcutforest")
train_job = functools.partial(algo_helpers.train_job, "randomcutforest")


def anomalies(seed: int, n: int = 2000, d: int = 4, rate: float = 0.01):
    """Normal records from three Gaussian clusters; `rate` of them moved 6-10 sd away (label 1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (3, d))
    x = centres[rng.integers(0, 3, n)] + rng.normal(0, 1, (n, d))
    y = np.zeros(n, np.float32)
    out = rng.choice(n, int(n * rate), replace=False)
    y[out] = 1
    direction = rng.normal(size=(out.size, d))
    x[out] += direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(6, 10, (out.size, 1))
    return x.astype(np.float32), y


def sdk_hyperparameters(**kw):
    """The hyperparameters the SageMaker SDK's RandomCutForest estimator really sends."""
    return algo_helpers.sdk_hyperparameters("RandomCutForest", feature_dim=4, mini_batch_size=1000, **kw)


X, Y = anomalies(0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job, rc = train_job(tmp_path_factory.mktemp("rcf"), sdk_hyperparameters(num_trees=50, num_samples_per_tree=128),
                        {"train": {"ContentType": "text/csv;label_size=0", "S3DistributionType": "ShardedByS3Key"},
                         "test": {"ContentType": "text/csv;label_size=1"}},
                        {("train", "part-0.csv"): csv_bytes(X), ("test", "t.csv"): csv_bytes(X, Y)})
    assert rc == 0, job.failure
    return job


@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained.paths.model_dir)


def auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s))


# -- the maths core ----------------------------------------------------------------------------

def reference_score(forest, x) -> float:
    """AWS's open library's scalar score, read literally: the leaf's term, then each ancestor up to
    the first box holding x folded in as p/(depth+1) + (1-p)·score; scaled, averaged over trees."""
    total = 0.0
    for t in range(forest.n_trees):
        node, path = t * forest.stride, []
        while True:
            path.append(node)
            if forest.children[node, 0] < 0:
                break
            node = int(forest.children[node, 0 if x[forest.cut_dim[node]] <= forest.cut_value[node] else 1])
        lo, hi = forest.bounds[path[-1]]
        leaf_depth = len(path) - 1
        if (x == lo).all():
            mass = forest.mass[path[-1]]
            score = (1 - mass / (2 * forest.sample_size)) / (leaf_depth + np.log2(mass + 1))
        else:
            score = 1 / (leaf_depth + 1)
            for depth in range(leaf_depth - 1, -1, -1):
                lo, hi = forest.bounds[path[depth]].astype(np.float64)
                grown = np.maximum(hi, x) - np.minimum(lo, x)
                p = (grown - (hi - lo)).sum() / grown.sum()
                if p == 0:
                    break
                score = p / (depth + 1) + (1 - p) * score
        total += score * np.log2(forest.sample_size + 1)
    return total / forest.n_trees


def test_scores_follow_aws_formula_exactly():
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(5, 40, 3)).astype(np.float32)
    samples[0, :5] = samples[0, 5]  # duplicates: a leaf of mass 6
    forest = build_forest(samples, np.random.default_rng(0))
    queries = np.concatenate([rng.normal(0, 2, (30, 3)), samples[0, :8], samples[3, :4]]).astype(np.float32)
    got = forest.score(queries)
    want = [reference_score(forest, q.astype(np.float64)) for q in queries]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scores_do_not_depend_on_how_many_rows_go_down_a_tree_together():
    rng = np.random.default_rng(5)
    samples = rng.normal(size=(4, 50, 3)).astype(np.float32)
    samples[2] = samples[2, 0]  # a tree of one point 50 times: its root is its leaf
    forest = build_forest(samples, np.random.default_rng(2))
    queries = np.concatenate([rng.normal(0, 2, (40, 3)), samples[1, :5], samples[2, :1]]).astype(np.float32)
    together = forest.score(queries)
    for block in (1, 7, 45):
        np.testing.assert_allclose(forest.score(queries, block=block), together, rtol=1e-12)
    want = [reference_score(forest, q.astype(np.float64)) for q in queries]
    np.testing.assert_allclose(together, want, rtol=1e-6)
    assert forest.score(queries[:0]).shape == (0,)


def test_trees_partition_their_samples_with_cuts_inside_their_boxes():
    rng = np.random.default_rng(4)
    samples = rng.normal(size=(3, 64, 5)).astype(np.float32)
    samples[1, :10, 2] = 7.0  # a dimension with ties
    forest = build_forest(samples, np.random.default_rng(1))
    for t in range(3):
        nodes = np.arange(t * forest.stride, (t + 1) * forest.stride)
        used = nodes[forest.mass[nodes] > 0]
        leaves = used[forest.children[used, 0] < 0]
        assert forest.mass[leaves].sum() == 64 and forest.mass[t * forest.stride] == 64
        # every sampled point is a leaf's point, once
        assert {tuple(p) for p in forest.bounds[leaves, 0]} == {tuple(p) for p in samples[t]}
        for node in used[forest.children[used, 0] >= 0]:
            lo, hi = forest.bounds[node]
            dim, value = forest.cut_dim[node], forest.cut_value[node]
            assert lo[dim] <= value < hi[dim]
            left, right = forest.children[node]
            assert forest.mass[left] + forest.mass[right] == forest.mass[node]
            assert forest.bounds[left, 1, dim] <= value < forest.bounds[right, 0, dim]
            for child in (left, right):
                assert (forest.bounds[child, 0] >= lo).all() and (forest.bounds[child, 1] <= hi).all()
                assert forest.depth[child] == forest.depth[node] + 1


def test_reservoirs_are_uniform_and_independent_of_batch_sizes():
    x = np.arange(200, dtype=np.float32)[:, None]
    counts = []
    for batch in (1, 7, 200):
        res = Reservoirs(2000, 20, 1, np.random.default_rng(batch))
        for start in range(0, 200, batch):
            res.add(x[start:start + batch])
        sample = res.samples()
        assert sample.shape == (2000, 20, 1)
        assert all(len(np.unique(tree)) == 20 for tree in sample[:50])  # without replacement
        counts.append(np.bincount(sample.reshape(-1).astype(int), minlength=200))
    for c in counts:  # each record in 2000 x 20/200 = 200 trees on average; binomial sd ~13.4
        assert c.min() > 140 and c.max() < 260, (c.min(), c.max())
    early, late = counts[1][:100].sum(), counts[1][100:].sum()
    assert abs(early - late) < 0.05 * (early + late)


def test_fewer_records_than_samples_puts_every_record_in_every_tree():
    rcf = RandomCutForest(num_trees=50, num_samples_per_tree=256, mini_batch_size=30).fit(X[:100])
    assert rcf.sample_size_ == 100 and rcf.forest_.sample_size == 100 and rcf.n_samples_seen_ == 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_injected_anomalies_are_found_whatever_the_seed(seed):
    x, y = anomalies(10 + seed, n=3000, d=5)
    rcf = RandomCutForest(random_state=seed).fit(x)  # AWS's defaults: 100 trees of 256
    scores = rcf.anomaly_score(x)
    assert scores.dtype == np.float32
    assert auc(y, scores) >= 0.97
    # AWS's scale: normal records below 1, these anomalies more than twice as high
    assert np.median(scores[y == 0]) < 1.0 and np.median(scores[y == 1]) > 2 * np.median(scores[y == 0])


def test_breast_cancer_with_malignant_cases_as_rare_anomalies():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler
    data = load_breast_cancer()
    benign, malignant = data.data[data.target == 1], data.data[data.target == 0]
    x = np.concatenate([benign, malignant[np.random.default_rng(0).choice(len(malignant), 20, replace=False)]])
    y = np.r_[np.zeros(len(benign)), np.ones(20)]
    x = StandardScaler().fit_transform(x)
    assert auc(y, RandomCutForest(num_trees=100, num_samples_per_tree=128).fit(x).anomaly_score(x)) >= 0.93


def test_a_record_in_the_sample_scores_lower_than_a_new_one_next_to_it():
    rcf = RandomCutForest(num_trees=50, num_samples_per_tree=64).fit(X[:64])
    seen = rcf.anomaly_score(X[:64])
    nearby = rcf.anomaly_score(X[:64] + 0.05)
    assert (seen < nearby).mean() > 0.9


# -- training ----------------------------------------------------------------------------------

def test_sdk_hyperparameters_train_and_the_model_is_safe_files(trained):
    assert sorted(p.name for p in trained.paths.model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    from safetensors.numpy import load_file
    arrays = load_file(str(trained.paths.model_dir / MODEL_FILE))
    assert arrays["bounds"].shape == (50 * (2 * 128 - 1), 2, 4) and arrays["bounds"].dtype == np.float32
    meta = json.loads((trained.paths.model_dir / META_FILE).read_text())
    assert meta["format"] == "smalgos-randomcutforest" and meta["num_trees"] == 50 and meta["sample_size"] == 128
    assert meta["records_seen"] == len(X)


def test_test_channel_metrics_by_the_three_sigma_rule(tmp_path, capfd):
    job, rc = train_job(tmp_path, sdk_hyperparameters(num_trees=50, num_samples_per_tree=128),
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv;label_size=1"}},
                        {("train", "a.csv"): csv_bytes(X), ("test", "t.csv"): csv_bytes(X, Y)})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    values = {m.name: float(re.findall(m.regex, out)[-1]) for m in ALGO.metrics if m.name.startswith("test:")}
    assert set(values) == {"test:f1", "test:accuracy", "test:precision", "test:recall"}
    # The same figures from the model and the labels, by the three-sigma rule.
    scores = RandomCutForest.load(job.paths.model_dir).anomaly_score(X).astype(np.float64)
    flagged, truth = scores > scores.mean() + 3 * scores.std(), Y == 1
    tp = (flagged & truth).sum()
    assert values["test:accuracy"] == pytest.approx((flagged == truth).mean(), abs=1e-6)
    assert values["test:precision"] == pytest.approx(tp / flagged.sum(), abs=1e-6)
    assert values["test:recall"] == pytest.approx(tp / truth.sum(), abs=1e-6)
    assert values["test:f1"] >= 0.8 and values["test:accuracy"] >= 0.99
    assert re.search(r"#test_score \(algo-1\) : \('f1', 0\.\d+\)", out)
    assert '"Algorithm": "RandomCutForest"' in out


def test_eval_metrics_accuracy_alone(tmp_path, capfd):
    job, rc = train_job(tmp_path, sdk_hyperparameters(num_trees=50, eval_metrics=["accuracy"]),
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv;label_size=1"}},
                        {("train", "a.csv"): csv_bytes(X), ("test", "t.csv"): csv_bytes(X, Y)})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    assert "test accuracy <score>=" in out and "test f1" not in out


@pytest.mark.parametrize("sparse", [False, True])
def test_pipe_mode_sdk_recordio_with_a_labelled_test_file(tmp_path, sparse, capfd):
    x = sp.csr_matrix(X) if sparse else X
    job, rc = train_job(tmp_path, sdk_hyperparameters(num_trees=50, num_samples_per_tree=128),
                        {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"},
                         "test": {"ContentType": "application/x-recordio-protobuf"}},
                        {("test", "t.pbr"): recordio_bytes(x, labels=Y)}, pipe=("train", recordio_bytes(x)))
    assert rc == 0, job.failure
    f1 = float(re.findall(ALGO.metric("test:f1").regex, capfd.readouterr().out)[-1])
    assert f1 >= 0.8
    model = RandomCutForest.load(job.paths.model_dir)
    assert auc(Y, model.anomaly_score(X)) >= 0.97


@pytest.mark.parametrize("hps, channels, files, first_line", [
    ({"feature_dim": "5"}, {}, {("train", "a.csv"): csv_bytes(X)},
     "ClientError: Channel 'train': records have 4 features but hyperparameter feature_dim is 5"),
    ({"feature_dim": "4", "num_trees": "10"}, {}, {("train", "a.csv"): csv_bytes(X)},
     "ClientError: Hyperparameter num_trees: value 10 is outside the range [50, 1000]"),
    ({"feature_dim": "4", "num_samples_per_tree": "4096"}, {}, {("train", "a.csv"): csv_bytes(X)},
     "ClientError: Hyperparameter num_samples_per_tree: value 4096 is outside the range [1, 2048]"),
    ({"feature_dim": "4", "eval_metrics": '["auc"]'}, {}, {("train", "a.csv"): csv_bytes(X)},
     "ClientError: Hyperparameter eval_metrics: 'auc' not among accuracy, precision_recall_fscore"),
    ({"feature_dim": "20000"}, {}, {("train", "a.csv"): csv_bytes(X)},
     "ClientError: Hyperparameter feature_dim: value 20000 is outside the range [1, 10000]"),
    ({}, {}, {("train", "a.csv"): csv_bytes(X)}, "ClientError: Missing required hyperparameter: feature_dim"),
    ({"feature_dim": "4"}, {"test": {"ContentType": "application/x-recordio-protobuf"}},
     {("train", "a.csv"): csv_bytes(X), ("test", "t.pbr"): recordio_bytes(X)},
     "ClientError: Channel 'test' has no labels: randomcutforest needs one label per record"),
    ({"feature_dim": "4"}, {"test": {"ContentType": "application/x-recordio-protobuf"}},
     {("train", "a.csv"): csv_bytes(X), ("test", "t.pbr"): recordio_bytes(X, labels=Y * 2)},
     "ClientError: Channel 'test': binary_classifier labels must be 0 or 1; found 2.0"),
    ({"feature_dim": "4"}, {"test": {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"}},
     {("train", "a.csv"): csv_bytes(X), ("test", "t.csv"): csv_bytes(X, Y)},
     "ClientError: Channel 'test': S3DistributionType ShardedByS3Key is not supported (supported: FullyReplicated)"),
    ({"feature_dim": "4"}, {}, {("train", "a.csv"): b"1,2,3,nan\n"},
     "ClientError: Channel 'train': 1 feature value(s) are NaN or infinite"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, hps, channels, files, first_line):
    job, rc = train_job(tmp_path, hps, {"train": {"ContentType": "text/csv"}, **channels}, files)
    assert rc == 1
    assert job.failure.splitlines()[0].startswith(first_line), job.failure


def test_hidden_and_tuning_keys_are_accepted_and_others_refused():
    hidden = {"_kvstore": "local", "_num_gpus": "auto", "_tuning_objective_metric": "test:f1"}
    hp = ALGO.hyperparameters.parse({"feature_dim": "4", **hidden})
    assert not set(hidden) & set(hp) and hp["num_trees"] == 100 and hp["num_samples_per_tree"] == 256
    assert hp["eval_metrics"] == ["accuracy", "precision_recall_fscore"] and hp["mini_batch_size"] == 1000
    with pytest.raises(ClientError, match=r"Unknown hyperparameter: _kvstorr\b"):
        ALGO.hyperparameters.parse({"feature_dim": "4", "_kvstorr": "auto"})


def test_declaration_as_aws_documents_it():
    assert ALGO.variants == ("cpu",)
    assert ALGO.channel("train").distributions == ("ShardedByS3Key", "FullyReplicated")
    assert ALGO.channel("test").distributions == ("FullyReplicated",)
    assert ALGO.metric("test:f1").tunable and ALGO.metric("test:f1").direction == "Maximize"
    assert ALGO.metric("test:f1").regex == r"#quality_metric: host=\S+, test f1 <score>=(\S+)"


# -- serving -----------------------------------------------------------------------------------

def model_scores(trained, rows) -> list[float]:
    return RandomCutForest.load(trained.paths.model_dir).anomaly_score(np.asarray(rows, np.float32)).tolist()


ROWS = [X[0].tolist(), (X[0] + 30).tolist()]


def test_json_response_body_is_exact(client, trained):
    body = "".join(",".join(repr(v) for v in row) + "\n" for row in ROWS).encode()
    r = client.post("/invocations", data=body, content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    a, b = (np.float32(s) for s in model_scores(trained, ROWS))
    assert r.data == f'{{"scores": [{{"score": {str(a)}}}, {{"score": {str(b)}}}]}}'.encode()  # shortest float32
    assert a < 1.5 < 3 < b  # a cluster record and a far-away one


def test_jsonlines_response_and_json_requests(client, trained):
    a, b = (np.float32(s) for s in model_scores(trained, ROWS))
    body = json.dumps({"features": ROWS[0]}) + "\n" + json.dumps({"data": {"features": {"values": ROWS[1]}}}) + "\n"
    r = client.post("/invocations", data=body.encode(), headers={"Content-Type": "application/jsonlines",
                                                                 "Accept": "application/jsonlines"})
    assert r.status_code == 200
    lines = r.data.decode().splitlines()
    assert [list(json.loads(line)) for line in lines] == [["score"], ["score"]]
    assert [np.float32(json.loads(line)["score"]) for line in lines] == [a, b]
    r = client.post("/invocations", data=json.dumps({"instances": [{"features": ROWS[0]}, {"features": ROWS[1]}]}),
                    headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert [np.float32(s["score"]) for s in r.get_json()["scores"]] == [a, b]


def test_recordio_protobuf_both_ways_with_the_sdk(client, trained):
    from sagemaker.amazon.common import read_records
    for x in (np.array(ROWS, np.float32), sp.csr_matrix(np.array(ROWS, np.float32))):
        r = client.post("/invocations", data=recordio_bytes(x), headers={
            "Content-Type": "application/x-recordio-protobuf", "Accept": "application/x-recordio-protobuf"})
        assert r.status_code == 200
        records = read_records(io.BytesIO(r.data))
        assert [list(rec.label) for rec in records] == [["score"], ["score"]]
        got = [rec.label["score"].float32_tensor.values[0] for rec in records]
        assert got == [float(np.float32(s)) for s in model_scores(trained, ROWS)]


@pytest.mark.parametrize("headers, data, status, fragment", [
    ({"Content-Type": "text/csv"}, b"1,2,3\n", 400, "Feature count mismatch: the model was trained on 4 features"),
    ({"Content-Type": "text/csv"}, b"1,2,3,nan\n", 400, "NaN or infinite"),
    ({"Content-Type": "text/csv", "Accept": "text/csv"}, b"1,2,3,4\n", 406, "application/json"),
    ({"Content-Type": "image/png"}, b"1,2,3,4\n", 415, "image/png"),
])
def test_bad_requests_are_4xx_with_json_bodies(client, headers, data, status, fragment):
    r = client.post("/invocations", data=data, headers=headers)
    assert r.status_code == status and fragment in r.get_json()["message"], r.get_json()

"""Multi-model endpoints (serving/multi_model.py) through Flask's test client: SageMaker's /models
API over real models of the algorithms whose AWS images serve MMEs (XGBoost, Linear Learner,
k-NN), several loaded at once, as several gunicorn workers see them (apps sharing one registry)."""

from __future__ import annotations

import json
import os
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from algo_helpers import csv_bytes, train_job
from xgb_helpers import Job, make_data, to_csv
from smalgos.declaration import load_algorithm
from smalgos.environment import Paths, ServingEnv
from smalgos.errors import ClientError
from smalgos.serving.app import create_app
from smalgos.serving.multi_model import create_multi_model_app
from smalgos.serving.server import build_app, load_model

RNG = np.random.default_rng(3)
X_LL = RNG.normal(size=(120, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Model directories as model.tar.gz holds them: name → (algorithm, model_dir)."""
    out = {}
    for name, objective, extra in (("xgb-reg", "reg:squarederror", {}), ("xgb-bin", "binary:logistic", {}),
                                   ("xgb-multi", "multi:softprob", {"num_class": 3})):
        X, y = make_data(objective, n=150)
        job = Job(tmp_path_factory.mktemp(name))
        job.setup({"num_round": 5, "max_depth": 3, "objective": objective, **extra},
                  {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y)})
        assert job.run() == 0, job.failure
        out[name] = ("xgboost", job.paths.model_dir)
    y_reg = X_LL @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    for name, predictor, y in (("ll-reg", "regressor", y_reg), ("ll-bin", "binary_classifier", (y_reg > 0) * 1.0)):
        job, rc = train_job("linear-learner", tmp_path_factory.mktemp(name),
                            {"predictor_type": predictor, "feature_dim": "4", "mini_batch_size": "32", "epochs": "2",
                             "num_models": "2"},
                            {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): csv_bytes(X_LL, y)})
        assert rc == 0, job.failure
        out[name] = ("linear-learner", job.paths.model_dir)
    for name, predictor, y in (("knn-cls", "classifier", (X_LL[:, 0] > 0) * 1.0), ("knn-reg", "regressor", y_reg)):
        job, rc = train_job("knn", tmp_path_factory.mktemp(name),
                            {"feature_dim": "4", "k": "3", "sample_size": "100", "predictor_type": predictor,
                             "mini_batch_size": "50"},
                            {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): csv_bytes(X_LL, y)})
        assert rc == 0, job.failure
        out[name] = ("knn", job.paths.model_dir)
    return out


@pytest.fixture
def base(tmp_path):
    """A /opt/ml of its own, with the model store /opt/ml/models."""
    (tmp_path / "models").mkdir()
    return tmp_path


def stage(base: Path, trained, name: str, as_name: str | None = None) -> str:
    """Copy a trained model to /opt/ml/models/<name>/model, as SageMaker does; its url."""
    dest = base / "models" / (as_name or name) / "model"
    shutil.copytree(trained[name][1], dest)
    return str(dest)


def server(base: Path, algorithm: str, **env):
    """A worker's app, as `serve` builds it with SAGEMAKER_MULTI_MODEL=true; workers of one server
    share `base / "registry"`."""
    serving_env = ServingEnv.from_env({"SAGEMAKER_MULTI_MODEL": "true",
                                       "SMALGOS_MME_REGISTRY_DIR": str(base / "registry"), **env})
    return build_app(algorithm, Paths(base), serving_env).test_client()


def single(trained, name):
    """/invocations of the one-model app over the same model: what invoke must answer."""
    algorithm, model_dir = trained[name]
    algo = load_algorithm(algorithm)
    return create_app(algo, load_model(algo, model_dir), ServingEnv.from_env({})).test_client()


def load(c, name, url):
    return c.post("/models", json={"model_name": name, "url": url})


CSV_XGB = csv_bytes(make_data("reg:squarederror", n=20, seed=5)[0])
CSV_LL = csv_bytes(X_LL[:15])


@pytest.mark.parametrize("algorithm, names, body", [
    pytest.param("xgboost", ["xgb-reg", "xgb-bin", "xgb-multi"], CSV_XGB, id="xgboost"),
    pytest.param("linear-learner", ["ll-reg", "ll-bin"], CSV_LL, id="linear-learner"),
    pytest.param("knn", ["knn-cls", "knn-reg"], CSV_LL, id="knn"),
])
def test_models_load_list_and_invoke_as_their_own_endpoints(trained, base, algorithm, names, body):
    c = server(base, algorithm)
    assert c.get("/ping").status_code == 200 and c.get("/models").get_json() == {"models": []}
    urls = {n: stage(base, trained, n) for n in names}
    for n in names:
        r = load(c, n, urls[n])
        assert r.status_code == 200, r.data
        assert r.get_json() == {"modelName": n, "modelUrl": urls[n]}
    assert c.get("/models").get_json() == {"models": [{"modelName": n, "modelUrl": urls[n]} for n in sorted(names)]}
    assert c.get(f"/models/{names[0]}").get_json() == {"modelName": names[0], "modelUrl": urls[names[0]]}
    answers = {}
    for n in names:
        for accept in ("application/json", "application/jsonlines"):
            headers = {"Content-Type": "text/csv", "Accept": accept}
            r = c.post(f"/models/{n}/invoke", data=body, headers=headers)
            want = single(trained, n).post("/invocations", data=body, headers=headers)
            assert r.status_code == 200 and want.status_code == 200, r.data
            assert (r.data, r.mimetype) == (want.data, want.mimetype)  # byte for byte /invocations' answer
        answers[n] = r.data
    assert len(set(answers.values())) == len(names)  # each model answers as itself


def test_invoke_errors_are_those_of_invocations(trained, base):
    c = server(base, "xgboost")
    load(c, "m", stage(base, trained, "xgb-reg", "m"))
    one = single(trained, "xgb-reg")
    for headers, body, status in [({"Content-Type": "application/x-npy"}, b"x", 415),
                                  ({"Content-Type": "text/csv", "Accept": "image/png"}, CSV_XGB, 406),
                                  ({"Content-Type": "text/csv"}, b"1,2,3\n", 400),
                                  ({"Content-Type": "text/csv; label_size=2"}, CSV_XGB, 415),
                                  ({"Content-Type": "text/csv"}, b"", 204)]:
        r = c.post("/models/m/invoke", data=body, headers=headers)
        want = one.post("/invocations", data=body, headers=headers)
        assert r.status_code == want.status_code == status
        assert r.data == want.data
    r = c.post("/invocations", data=CSV_XGB, headers={"Content-Type": "text/csv"})
    assert r.status_code == 404 and "/models/<model_name>/invoke" in r.get_json()["message"]


def test_already_loaded_is_409_and_unknown_models_are_404(trained, base):
    c = server(base, "xgboost")
    url = stage(base, trained, "xgb-reg")
    assert load(c, "a", url).status_code == 200
    r = load(c, "a", stage(base, trained, "xgb-bin"))
    assert r.status_code == 409 and "'a' is already loaded" in r.get_json()["message"]
    for method, path in (("get", "/models/b"), ("delete", "/models/b"), ("post", "/models/b/invoke")):
        r = getattr(c, method)(path, data=CSV_XGB, headers={"Content-Type": "text/csv"})
        assert r.status_code == 404 and "'b' is not loaded" in r.get_json()["message"], (method, path)
    assert c.delete("/models/a").get_json() == {"modelName": "a", "modelUrl": url}
    assert c.delete("/models/a").status_code == 404
    assert c.post("/models/a/invoke", data=CSV_XGB, headers={"Content-Type": "text/csv"}).status_code == 404
    assert c.get("/models").get_json() == {"models": []}
    assert load(c, "a", url).status_code == 200  # unloaded, it loads again


def test_bad_load_requests_are_4xx_naming_what_is_wrong(trained, base, tmp_path_factory):
    c = server(base, "xgboost")
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(trained["xgb-reg"][1], outside / "model")
    (base / "models" / "linked").symlink_to(outside / "model")
    (base / "models" / "empty").mkdir()
    (base / "models" / "garbage").mkdir()
    (base / "models" / "garbage" / "xgboost-model").write_bytes(b"not a model")
    (base / "models" / "escape").mkdir()
    (base / "models" / "escape" / "xgboost-model").symlink_to(outside / "model" / "xgboost-model")
    store = base / "models"
    cases = [
        (b"not json", 400, "JSON object"),
        (json.dumps({"url": str(store / "empty")}).encode(), 400, "model_name"),
        (json.dumps({"model_name": "x"}).encode(), 400, "url"),
        (json.dumps({"model_name": "a/b", "url": str(store / "empty")}).encode(), 400, "model_name"),
        (json.dumps({"model_name": "x", "url": "models/empty"}).encode(), 400, "absolute"),
        (json.dumps({"model_name": "x", "url": str(outside / "model")}).encode(), 400, "outside the model store"),
        (json.dumps({"model_name": "x", "url": str(store / "linked")}).encode(), 400, "outside the model store"),
        (json.dumps({"model_name": "x", "url": str(store / "missing")}).encode(), 404, "no such model directory"),
        (json.dumps({"model_name": "x", "url": str(store / "empty")}).encode(), 400, "No model file in"),
        (json.dumps({"model_name": "x", "url": str(store / "garbage")}).encode(), 400, "xgboost-model"),
        (json.dumps({"model_name": "x", "url": str(store / "escape")}).encode(), 400, "outside the model directory"),
    ]
    for body, status, fragment in cases:
        r = c.post("/models", data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and fragment in r.get_json()["message"], (body, r.status_code, r.data)
    assert c.get("/models").get_json() == {"models": []}  # nothing half-loaded


def test_list_is_paginated(trained, base):
    c = server(base, "xgboost")
    url = stage(base, trained, "xgb-reg")
    names = [f"m{i}" for i in range(5)]
    for n in reversed(names):
        assert load(c, n, url).status_code == 200
    seen, token, pages = [], None, 0
    while True:
        r = c.get("/models", query_string={"limit": 2, **({"next_page_token": token} if token else {})})
        page = r.get_json()
        seen += [m["modelName"] for m in page["models"]]
        pages += 1
        token = page.get("nextPageToken")
        if token is None:
            break
    assert seen == names and pages == 3
    assert [m["modelName"] for m in c.get("/models").get_json()["models"]] == names  # default limit 100
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"next_page_token": "abc"}):
        r = c.get("/models", query_string=bad)
        assert r.status_code == 400 and set(bad) <= set(r.get_json()["message"].split()[:1]), bad


def test_every_worker_sees_loads_and_unloads(trained, base):
    """Two workers of one server: a model loaded through one serves from the other (loaded there
    lazily); unloaded through either, both answer 404; loaded anew, both serve the new model."""
    w1, w2 = server(base, "xgboost"), server(base, "xgboost")
    reg, binary = stage(base, trained, "xgb-reg"), stage(base, trained, "xgb-bin")
    headers = {"Content-Type": "text/csv", "Accept": "application/json"}
    want_reg = single(trained, "xgb-reg").post("/invocations", data=CSV_XGB, headers=headers).data
    want_bin = single(trained, "xgb-bin").post("/invocations", data=CSV_XGB, headers=headers).data
    assert load(w1, "m", reg).status_code == 200
    assert load(w2, "m", reg).status_code == 409
    assert w2.get("/models").get_json()["models"] == [{"modelName": "m", "modelUrl": reg}]
    assert w2.post("/models/m/invoke", data=CSV_XGB, headers=headers).data == want_reg
    assert w2.delete("/models/m").status_code == 200
    assert w1.post("/models/m/invoke", data=CSV_XGB, headers=headers).status_code == 404
    assert w1.application.extensions["smalgos.models"].cached_names() == []  # its copy is dropped
    assert load(w1, "m", binary).status_code == 200
    assert w2.post("/models/m/invoke", data=CSV_XGB, headers=headers).data == want_bin  # not the old copy
    # a worker drops the copies of models another worker unloaded at its next call
    assert load(w1, "n", reg).status_code == 200
    assert w2.post("/models/n/invoke", data=CSV_XGB, headers=headers).status_code == 200
    assert w2.application.extensions["smalgos.models"].cached_names() == ["m", "n"]
    assert w1.delete("/models/m").status_code == 200
    w2.post("/models/n/invoke", data=CSV_XGB, headers=headers)
    assert w2.application.extensions["smalgos.models"].cached_names() == ["n"]


def test_a_model_that_does_not_fit_is_507(trained, base):
    c = server(base, "xgboost", SMALGOS_MME_MIN_AVAILABLE_MB=str(1 << 30))  # a petabyte must stay free
    r = load(c, "m", stage(base, trained, "xgb-reg"))
    assert r.status_code == 507
    body = r.get_json()
    assert body["error"] == "InsufficientMemory" and "SMALGOS_MME_MIN_AVAILABLE_MB=1073741824" in body["message"]
    assert c.get("/models").get_json() == {"models": []}


def test_memory_pressure_evicts_least_recently_used_models(trained, base):
    """A worker with room for two models: a third evicts the least recently used (still listed,
    loaded again when invoked); a model that does not fit even alone is 507."""
    algo = load_algorithm("xgboost")
    alive = weakref.WeakSet()  # the model objects this worker still holds

    def loader(model_dir):
        model = load_model(algo, model_dir)
        alive.add(model)
        return model

    def available() -> int:  # 3 GiB, less 1 GiB per model held
        return (3 - len(alive)) << 30

    env = ServingEnv.from_env({"SAGEMAKER_MULTI_MODEL": "true", "SMALGOS_MME_MIN_AVAILABLE_MB": "1024"})
    app = create_multi_model_app(algo, env, store_root=base / "models", load=loader,
                                 registry_dir=base / "registry", available=available)
    c = app.test_client()
    cache = app.extensions["smalgos.models"]
    url = stage(base, trained, "xgb-reg")
    headers = {"Content-Type": "text/csv"}
    for n in ("a", "b"):
        assert load(c, n, url).status_code == 200
    assert cache.cached_names() == ["a", "b"]
    c.post("/models/a/invoke", data=CSV_XGB, headers=headers)  # a is now the most recent
    assert load(c, "c", url).status_code == 200
    assert cache.cached_names() == ["a", "c"]  # b evicted, after loading c left too little
    assert [m["modelName"] for m in c.get("/models").get_json()["models"]] == ["a", "b", "c"]
    assert c.post("/models/b/invoke", data=CSV_XGB, headers=headers).status_code == 200  # loaded again
    assert cache.cached_names() == ["c", "b"]
    tight = create_multi_model_app(algo, env, store_root=base / "models", load=lambda d: load_model(algo, d),
                                   registry_dir=base / "registry2", available=lambda: 512 << 20)
    r = load(tight.test_client(), "d", url)
    assert r.status_code == 507 and "512 MB available" in r.get_json()["message"]


def test_ping_and_execution_parameters_without_models(base):
    c = server(base, "linear-learner", SAGEMAKER_MODEL_SERVER_WORKERS="2")
    assert c.get("/ping").status_code == 200
    assert c.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_algorithms_opt_in_through_their_declaration(base):
    assert all(load_algorithm(a).serving.multi_model for a in ("xgboost", "linear-learner", "knn"))
    assert not load_algorithm("kmeans").serving.multi_model
    with pytest.raises(ClientError, match="kmeans does not serve multi-model endpoints"):
        server(base, "kmeans")


ROOT = Path(__file__).resolve().parents[3]
MME_LABEL = "LABEL com.amazonaws.sagemaker.capabilities.multi-models=true"


@pytest.mark.parametrize("dockerfile", sorted(ROOT.glob("containers/*/Dockerfile")), ids=lambda p: p.parent.name)
def test_image_label_matches_the_declaration(dockerfile, monkeypatch):
    """The label SageMaker reads to allow an MME is on exactly the images whose declaration opts in."""
    monkeypatch.syspath_prepend(str(dockerfile.parent))  # a package not installed yet
    algorithm = load_algorithm(dockerfile.parent.name)
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    assert (MME_LABEL in lines) == algorithm.serving.multi_model


def test_two_workers_loading_one_name_at_once_give_one_200_and_one_409(trained, base):
    from concurrent.futures import ThreadPoolExecutor

    workers = [server(base, "xgboost") for _ in range(2)]
    urls = [stage(base, trained, "xgb-reg"), stage(base, trained, "xgb-bin")]
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda i: load(workers[i], "m", urls[i]).status_code, range(2)))
    assert statuses == [200, 409]
    listed = workers[0].get("/models").get_json()["models"]
    assert len(listed) == 1 and listed[0]["modelUrl"] in urls
    headers = {"Content-Type": "text/csv"}
    answers = {w.post("/models/m/invoke", data=CSV_XGB, headers=headers).data for w in workers}
    assert len(answers) == 1  # both workers serve the one model that won


def test_available_memory_and_registry_folder():
    from smalgos.serving.multi_model import available_memory_bytes, default_registry_dir

    mem_available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemAvailable:"))
    assert 0 < available_memory_bytes() <= mem_available * 1.5  # at most MemAvailable (give or take churn)
    folder = default_registry_dir()
    assert folder == default_registry_dir() and folder.name.startswith(f"smalgos-mme-{os.getppid()}-")

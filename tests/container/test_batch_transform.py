"""SageMaker Python SDK v2 local batch transform for each of the five algorithms, as a user runs it:
`Model(image_uri=ours, model_data=file://…/model.tar.gz).transformer(instance_type="local", …)`
then `transform(data=file://…, content_type=…, split_type=…)`; each output file must hold one
record per input row, equal to what the serving app answers for those rows in one request
(under `SAGEMAKER_BATCH=true`, as a transform job's container is).

JSON Lines and CSV split by `Line` (strategy `MultiRecord`), recordIO-protobuf split by `RecordIO`:
the split types AWS recommends for those content types (contract §4.2). Accept is
`application/jsonlines` with `AssembleWith=Line`, as AWS recommends for batch. Every algorithm runs
at least one transform and every format runs under two or more algorithms (`PLAN`): each transform
starts a container, and the formats' decoding is the serving app's, tested per format in-process.

Two limits of the SDK's local transform (sagemaker 2.257.7, `sagemaker/local/`), not of the images:
- `data.py` `MultiRecordStrategy.pad` starts its buffer as `""` and adds each split record to it;
  the `RecordIO` splitter yields bytes, so `MultiRecord` + `RecordIO` is a `TypeError` before any
  request. The recordIO runs here use `SingleRecord`, where (as on SageMaker: `TransformInput.
  SplitType` strips a binary record's padding under `SingleRecord`) each request is one bare
  `Record` message without its RecordIO framing.
- `entities.py` `_LocalTransformJob.start` copies `BatchStrategy` from `/execution-parameters`
  when the caller gave none, but `data.py` `get_batch_strategy_instance` knows only the API's
  spelling (`MultiRecord`): the documented `MULTI_RECORD` that our images (and AWS's XGBoost
  image) answer makes it raise `Invalid Batch Strategy`. So every run here names its strategy;
  one test shows the SDK does read our `/execution-parameters`.

The transforms run the images; to keep the file quick, the model is trained and the reference
answers computed in this process, by the same code the images run (`run_training`, the serving
app through Flask's test client). Tiny data, few epochs.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from algo_helpers import train_job
from smalgos.declaration import load_algorithm
from smalgos.environment import ServingEnv
from smalgos.serving.app import create_app
from smalgos.serving.server import load_model

from .helpers import DATA, ROLE, hyperparameters, load_split, remove_local_mode_containers
from .test_more_algorithms import RECORDIO, blobs, csv, recordio

pytestmark = pytest.mark.container

JSONLINES = "application/jsonlines"
QUERIES = 12


@dataclass(frozen=True)
class Case:
    hyperparameters: dict
    content_type: str             # of the train channel
    train: bytes
    queries: np.ndarray


def _cases() -> dict[str, Case]:
    x_test = load_split("test")[0][:QUERIES]
    breast_cancer = (DATA / "train.csv").read_bytes()
    centres = [[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]]
    x_blobs, y_blobs = blobs(centres, 40, 0.5, seed=0)
    q_blobs, _ = blobs(centres, QUERIES // 3, 0.5, seed=1)
    rng = np.random.default_rng(2)
    x_pca = (rng.standard_normal((200, 5)) * [5, 2, 0.5, 0.1, 0.1] + 3).astype(np.float32)
    return {
        "linear-learner": Case(hyperparameters(epochs=3), "text/csv", breast_cancer, x_test),
        "xgboost": Case({"num_round": 5, "objective": "binary:logistic", "max_depth": 3}, "text/csv",
                        breast_cancer, x_test),
        "kmeans": Case({"k": 3, "feature_dim": 4, "mini_batch_size": 40}, RECORDIO, recordio(x_blobs),
                       q_blobs),
        "pca": Case({"feature_dim": 5, "num_components": 2, "mini_batch_size": 100}, "text/csv;label_size=0",
                    csv(x_pca), x_pca[:QUERIES]),
        "knn": Case({"feature_dim": 4, "k": 5, "predictor_type": "classifier", "sample_size": 120,
                     "mini_batch_size": 40}, RECORDIO, recordio(x_blobs, y_blobs), q_blobs),
    }


CASES = _cases()


def jsonlines(x) -> bytes:
    return "".join(json.dumps({"features": [float(v) for v in row]}) + "\n" for row in x).encode()


# name: (content type, split type, strategy, body of the rows)
FORMATS = {
    "jsonlines": (JSONLINES, "Line", "MultiRecord", jsonlines),
    "csv": ("text/csv", "Line", "MultiRecord", csv),
    # SingleRecord: each request is one Record, its framing stripped; MultiRecord + RecordIO is a
    # TypeError inside the SDK's local mode (local/data.py joins bytes into a str buffer)
    "recordio": (RECORDIO, "RecordIO", "SingleRecord", recordio),
}


@dataclass
class Served:
    algo: str
    image: str
    model_tar: Path
    queries: np.ndarray
    expected: list                 # the serving app's batch answer for the queries, one record per row


def served_answer(algo: str, model_dir: Path, body: bytes, content_type: str, accept: str, *,
                  batch: bool = False) -> bytes:
    """What the serving app (the images' own code, run in this process) answers for `body`; with
    `batch`, as in a transform job (`SAGEMAKER_BATCH=true`: XGBoost then writes one bare value a line)."""
    algorithm = load_algorithm(algo)
    # The models read the environment as they load (XGBoost: SAGEMAKER_BATCH), as in the image.
    with mock.patch.dict(os.environ, {"SAGEMAKER_BATCH": "true"} if batch else {}):
        app = create_app(algorithm, load_model(algorithm, model_dir), ServingEnv.from_env())
    answer = app.test_client().post("/invocations", data=body,
                                    headers={"Content-Type": content_type, "Accept": accept})
    assert answer.status_code == 200, answer.text
    return answer.data


def records(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


@pytest.fixture(scope="module", params=list(CASES))
def served(request, algo_image, tmp_path_factory) -> Served:
    """One trained model per algorithm, packed as SageMaker does into model.tar.gz, alone in its
    folder (local mode mounts the tarball's folder, extracted, as /opt/ml/model)."""
    algo, case = request.param, CASES[request.param]
    image = algo_image(algo)
    base = tmp_path_factory.mktemp(f"transform-{algo}")
    job, rc = train_job(algo, base / "opt_ml", case.hyperparameters, {"train": {"ContentType": case.content_type}},
                        {("train", "train"): case.train})
    assert rc == 0, job.failure
    model_tar = base / "model" / "model.tar.gz"
    model_tar.parent.mkdir()
    with tarfile.open(model_tar, "w:gz") as tar:
        for f in sorted(job.paths.model_dir.iterdir()):
            tar.add(f, arcname=f.name)
    expected = records(served_answer(algo, job.paths.model_dir, csv(case.queries), "text/csv", JSONLINES, batch=True))
    assert len(expected) == len(case.queries), expected[:3]
    return Served(algo, image, model_tar, case.queries, expected)


def transformer(session, served: Served, out: Path, strategy: str | None):
    from sagemaker.model import Model

    model = Model(image_uri=served.image, model_data=f"file://{served.model_tar}", role=ROLE,
                  sagemaker_session=session)
    return model.transformer(instance_count=1, instance_type="local", strategy=strategy, accept=JSONLINES,
                             assemble_with="Line", output_path=f"file://{out}")


def assert_same_answers(got: list, expected: list) -> None:
    """Record for record: the same keys (or bare values, as XGBoost's batch output), equal values."""
    assert len(got) == len(expected), (len(got), len(expected), got[:3])
    for g, e in zip(got, expected):
        assert isinstance(g, dict) == isinstance(e, dict), (g, e)
        if not isinstance(e, dict):
            g, e = {"value": g}, {"value": e}
        assert sorted(g) == sorted(e), (g, e)
        for key in e:
            np.testing.assert_allclose(np.asarray(g[key], np.float64), np.asarray(e[key], np.float64),
                                       rtol=1e-5, atol=1e-6, err_msg=key)


PLAN = [("linear-learner", "csv"), ("linear-learner", "jsonlines"), ("linear-learner", "recordio"),
        ("xgboost", "csv"), ("xgboost", "jsonlines"), ("kmeans", "jsonlines"), ("kmeans", "recordio"),
        ("pca", "csv"), ("knn", "recordio")]


@pytest.mark.parametrize("served, fmt", PLAN, indirect=["served"])
def test_local_transform_output_equals_the_served_answers(served, session, sdk_env, fmt):
    content_type, split_type, strategy, encode = FORMATS[fmt]
    folder = sdk_env / "transform" / served.algo / fmt
    (folder / "in").mkdir(parents=True)
    (folder / "in" / f"queries.{fmt}").write_bytes(encode(served.queries))
    job = transformer(session, served, folder / "out", strategy)
    job.transform(data=f"file://{folder / 'in'}", content_type=content_type, split_type=split_type,
                  wait=True, logs=False)
    output = folder / "out" / f"queries.{fmt}.out"
    assert output.exists(), sorted(p.name for p in folder.rglob("*"))
    assert_same_answers(records(output.read_bytes()), served.expected)


@pytest.mark.parametrize("served", ["linear-learner"], indirect=True)
def test_sdk_reads_execution_parameters_but_not_their_documented_spelling(served, engine, session, sdk_env):
    """With no strategy given, the SDK takes BatchStrategy from our /execution-parameters: the
    `MULTI_RECORD` there reaches its strategy table, which knows only `MultiRecord`. Had it not
    read the endpoint, its own default (`MultiRecord`) would have run the job."""
    folder = sdk_env / "transform" / "no-strategy"
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "queries.csv").write_bytes(csv(served.queries))
    job = transformer(session, served, folder / "out", strategy=None)
    try:
        with pytest.raises(ValueError, match="Invalid Batch Strategy"):
            job.transform(data=f"file://{folder / 'in'}", content_type="text/csv", split_type="Line",
                          wait=True, logs=False)
    finally:  # the SDK raised before stopping its serving container: stop it here
        remove_local_mode_containers(engine, sdk_env)

"""XGBoost's framework (script) mode under SageMaker SDK v2 local mode, as its users write it:
`sagemaker.xgboost.XGBoost(entry_point=..., source_dir=..., image_uri=ours)` fits with the user's
script, and `.deploy` serves through that script's model_fn / predict_fn.

Local mode exits 0 when the training container fails (docker-compose), so the tests read the
artifacts: the model the script saved, the file it wrote to SM_OUTPUT_DATA_DIR, the failure file.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from .helpers import DATA, ROLE, load_split, model_artifact
from .test_more_algorithms import deployed, extract

pytestmark = pytest.mark.container

SCRIPT = '''
import argparse, json, os
import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    return xgb.Booster(model_file=os.path.join(model_dir, "xgboost-model"))


def predict_fn(data, model):
    return (model.predict(data) > 0.5).astype("float32")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int)
    parser.add_argument("--max_depth", type=int)
    parser.add_argument("--objective", type=str)
    args = parser.parse_args()
    rows = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    booster = xgb.train({"max_depth": args.max_depth, "objective": args.objective},
                        xgb.DMatrix(rows[:, 1:], label=rows[:, 0]), num_boost_round=args.num_round)
    booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "job.json"), "w") as f:
        json.dump({"args": vars(args), "hosts": json.loads(os.environ["SM_HOSTS"]),
                   "module_dir": os.environ["SM_MODULE_DIR"], "cwd": os.getcwd()}, f)
'''


def framework_estimator(session, root, image, source_dir, entry_point="entry.py"):
    from sagemaker.xgboost import XGBoost

    return XGBoost(entry_point=entry_point, source_dir=str(source_dir), image_uri=image, framework_version="1.7-1",
                   role=ROLE, instance_count=1, instance_type="local", output_path=f"file://{root}",
                   sagemaker_session=session,
                   # Never uploaded to (local code); naming a bucket spares `deploy` the STS call that
                   # finds the account's default bucket, which needs AWS.
                   code_location="s3://unused-local-code/code",
                   hyperparameters={"num_round": 10, "max_depth": 3, "objective": "binary:logistic"})


def fit(estimator, data_dir):
    from sagemaker.inputs import TrainingInput

    estimator.fit({"train": TrainingInput(f"file://{data_dir}", content_type="text/csv")}, wait=True, logs=False)


@pytest.fixture(scope="module")
def data_dir(sdk_env):
    folder = sdk_env / "script-data" / "train"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_bytes((DATA / "train.csv").read_bytes())
    return folder


def test_framework_estimator_fits_with_the_script_and_serves_through_its_handlers(algo_image, session, sdk_env,
                                                                                 data_dir, tmp_path):
    import xgboost
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    src = tmp_path / "src"
    src.mkdir()
    (src / "entry.py").write_text(SCRIPT)
    est = framework_estimator(session, sdk_env / "script-output", algo_image("xgboost"), src)
    fit(est, data_dir)
    model_tar = model_artifact(est)
    booster = xgboost.Booster(model_file=str(extract(model_tar, "xgboost-model", tmp_path)))
    assert booster.num_boosted_rounds() == 10  # --num_round 10 reached the script
    with tarfile.open(model_tar.parent / "output.tar.gz") as tar:
        job = json.load(tar.extractfile("data/job.json"))
    hosts = job.pop("hosts")
    assert len(hosts) == 1 and hosts[0].startswith("algo-1")  # local mode's host: algo-1-<random>
    assert job == {"args": {"num_round": 10, "max_depth": 3, "objective": "binary:logistic"},
                   "module_dir": "/opt/ml/code", "cwd": "/opt/ml/code"}

    x_test, y_test = load_split("test")
    expected = (booster.predict(xgboost.DMatrix(x_test)) > 0.5).astype(np.float32)
    with deployed(est, CSVSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(x_test)  # default input_fn (CSV → DMatrix), predict_fn, default output_fn
    assert np.array_equal(np.asarray(answer, np.float32), expected)
    assert np.mean(expected == y_test) > 0.9


def test_a_failing_script_fails_the_job_with_its_error(algo_image, session, sdk_env, data_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "entry.py").write_text("raise RuntimeError('the data has no label column')\n")
    est = framework_estimator(session, sdk_env / "script-failing", algo_image("xgboost"), src)
    try:
        fit(est, data_dir)
    except RuntimeError:
        pass  # docker-compose 2 reports the failed container; 1.x exits 0
    output = next((sdk_env / "script-failing").rglob("output.tar.gz"))
    with tarfile.open(output) as tar:
        failure = tar.extractfile("failure").read().decode()
    assert failure.splitlines()[0] == ("AlgorithmError: ExecuteUserScriptError: entry.py exited with code 1:"
                                       " RuntimeError: the data has no label column")

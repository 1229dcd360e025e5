"""Training through /opt/ml (LocalJob + run_training), compared with plain `xgboost.train`."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb

from xgb_helpers import make_data, to_csv, to_libsvm, to_parquet
from smalgos.localjob import PipeFeeder

OBJECTIVES = {
    "regression": {"objective": "reg:squarederror"},
    "binary": {"objective": "binary:logistic"},
    "multiclass": {"objective": "multi:softprob", "num_class": 3},
}
COMMON = {"max_depth": 3, "eta": 0.3}
ROUNDS = 8


def peer(params, X, y, rounds=ROUNDS, w=None):
    return xgb.train({**params, **COMMON}, xgb.DMatrix(X, label=y, weight=w), rounds)


def assert_same_predictions(ours, theirs, X):
    d = xgb.DMatrix(X)
    a, b = ours.predict(d), theirs.predict(d)
    assert a.shape == b.shape
    print(f"max |prediction difference| vs plain xgboost: {np.max(np.abs(a - b))}")
    assert np.max(np.abs(a - b)) <= 1e-6, np.max(np.abs(a - b))
    return float(np.max(np.abs(a - b)))


@pytest.mark.parametrize("fmt", ["csv", "libsvm", "parquet", "protobuf", "protobuf-sparse"])
@pytest.mark.parametrize("task", list(OBJECTIVES))
def test_every_format_trains_the_model_plain_xgboost_trains(job, tmp_path, to_protobuf, fmt, task):
    params = OBJECTIVES[task]
    X, y = make_data(params["objective"], missing=0.05 if fmt in ("csv", "parquet", "protobuf") else 0.0)
    Xv, yv = make_data(params["objective"], n=80, seed=1)
    if fmt == "csv":
        data, val, ctype = to_csv(X, y), to_csv(Xv, yv), "text/csv"
    elif fmt == "libsvm":
        data, val, ctype = to_libsvm(X, y), to_libsvm(Xv, yv), None  # no ContentType: libsvm, as AWS
    elif fmt == "parquet":
        data, val, ctype = to_parquet(X, y), to_parquet(Xv, yv), "application/x-parquet"
    else:
        sparse = fmt == "protobuf-sparse"
        data, val = to_protobuf(X, y, sparse=sparse), to_protobuf(Xv, yv, sparse=sparse)
        ctype = "application/x-recordio-protobuf"
    channel = {"ContentType": ctype} if ctype else {}
    job.setup({"num_round": ROUNDS, **params, **COMMON, "eval_metric": "mlogloss" if task == "multiclass" else
               "logloss" if task == "binary" else "rmse"},
              {"train": channel, "validation": channel},
              {("train", "part-0"): data, ("validation", "part-0"): val})
    assert job.run() == 0, job.failure

    if fmt == "libsvm":  # XGBoost's own LibSVM reader is the peer: same column numbering
        path = tmp_path / "peer.libsvm"
        path.write_bytes(data)
        theirs = xgb.train({**params, **COMMON}, xgb.DMatrix(f"{path}?format=libsvm"), ROUNDS)
    elif fmt == "protobuf-sparse":
        theirs = xgb.train({**params, **COMMON}, xgb.DMatrix(sp.csr_matrix(np.nan_to_num(X)), label=y), ROUNDS)
    else:
        theirs = peer(params, X, y)
    ours = job.booster()
    assert ours.num_boosted_rounds() == ROUNDS
    assert_same_predictions(ours, theirs, X if fmt != "protobuf-sparse" else np.nan_to_num(X))


def test_one_based_libsvm_keeps_column_numbers(job, tmp_path):
    X, y = make_data("reg:squarederror")
    data = to_libsvm(X, y, one_based=True)
    job.setup({"num_round": 4}, {"train": {"ContentType": "text/x-libsvm"}}, {("train", "a"): data})
    assert job.run() == 0, job.failure
    path = tmp_path / "peer.libsvm"
    path.write_bytes(data)
    theirs = xgb.train({}, xgb.DMatrix(f"{path}?format=libsvm"), 4)
    ours = job.booster()
    assert ours.num_features() == theirs.num_features() == X.shape[1] + 1
    assert_same_predictions(ours, theirs, np.hstack([np.zeros((len(X), 1), np.float32), X]))


def test_csv_weights_and_libsvm_weights(job, tmp_path):
    X, y = make_data("binary:logistic")
    w = np.linspace(0.5, 2.0, len(y)).astype(np.float32)
    job.setup({"num_round": ROUNDS, **OBJECTIVES["binary"], **COMMON, "csv_weights": 1},
              {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y, w)})
    assert job.run() == 0, job.failure
    assert_same_predictions(job.booster(), peer(OBJECTIVES["binary"], X, y, w=w), X)

    other = type(job)(tmp_path / "svm")
    other.setup({"num_round": ROUNDS, **OBJECTIVES["binary"], **COMMON}, {"train": {"ContentType": "libsvm"}}
                if False else {"train": {"ContentType": "text/libsvm"}}, {("train", "a"): to_libsvm(X, y, w)})
    assert other.run() == 0, other.failure
    theirs = xgb.train({**OBJECTIVES["binary"], **COMMON},
                       xgb.DMatrix(sp.csr_matrix(X), label=y, weight=w), ROUNDS)
    assert_same_predictions(other.booster(), theirs, X)


@pytest.mark.parametrize("ctype", ["text/csv", "application/x-recordio-protobuf", "application/x-parquet"])
def test_pipe_mode(job, to_protobuf, ctype):
    X, y = make_data("binary:logistic")
    data = {"text/csv": to_csv, "application/x-parquet": to_parquet,
            "application/x-recordio-protobuf": lambda a, b: to_protobuf(a, b)}[ctype](X, y)
    if ctype == "application/x-parquet":
        half = len(X) // 2  # two S3 objects back to back in one FIFO
        data = to_parquet(X[:half], y[:half]) + to_parquet(X[half:], y[half:])
    job.setup({"num_round": ROUNDS, **OBJECTIVES["binary"], **COMMON},
              {"train": {"ContentType": ctype, "TrainingInputMode": "Pipe"}})
    with PipeFeeder(job.paths, "train", data, epochs=1, chunk_size=4096) as feeder:
        assert job.run() == 0, job.failure
    assert feeder.epochs_served == 1  # one pass: the data is read once
    assert_same_predictions(job.booster(), peer(OBJECTIVES["binary"], X, y), X)


def test_log_lines_match_aws_metric_regexes(job, capsys):
    from smalgos_xgboost.declaration import ALGORITHM

    X, y = make_data("binary:logistic")
    job.setup({"num_round": 3, **OBJECTIVES["binary"], "eval_metric": "auc,logloss,f1"},
              {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}},
              {("train", "a"): to_csv(X, y), ("validation", "a"): to_csv(X[:60], y[:60])})
    assert job.run() == 0, job.failure
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"^\[\d+\]\t", line)]
    assert len(lines) == 3 and lines[0].startswith("[0]\ttrain-auc:")
    cloudwatch = out.replace("\t", "#011")  # how CloudWatch shows a tab, which AWS's regexes expect
    for name in ("validation:auc", "validation:logloss", "validation:f1", "train:auc", "train:f1"):
        values = re.findall(ALGORITHM.metric(name).regex, cloudwatch)
        assert len(values) == 3, name
        # AWS's `(\S+)` runs on over the next `#011...`; SageMaker reads the leading number.
        float(re.match(r"[-+0-9.eE]+", values[-1]).group())


def test_early_stopping_matches_xgboost(job):
    X, y = make_data("binary:logistic", n=400)
    Xv, yv = make_data("binary:logistic", n=100, seed=5)
    params = {**OBJECTIVES["binary"], "max_depth": 6, "eta": 0.6, "eval_metric": "logloss"}
    job.setup({"num_round": 200, **params, "early_stopping_rounds": 3},
              {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}},
              {("train", "a"): to_csv(X, y), ("validation", "a"): to_csv(Xv, yv)})
    assert job.run() == 0, job.failure
    dtrain, dval = xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)
    theirs = xgb.train(params, dtrain, 200, evals=[(dtrain, "train"), (dval, "validation")],
                       early_stopping_rounds=3, verbose_eval=False)
    ours = job.booster()
    assert int(ours.attr("best_iteration")) == theirs.best_iteration < 199
    assert ours.num_boosted_rounds() == theirs.best_iteration + 1  # save_best, as AWS's image
    d = xgb.DMatrix(Xv)
    np.testing.assert_array_equal(ours.predict(d),
                                  theirs.predict(d, iteration_range=(0, theirs.best_iteration + 1)))


def test_checkpoints_every_round_and_resume_after_interruption(job, tmp_path):
    from smalgos_xgboost import checkpoints

    X, y = make_data("reg:squarederror")
    ckpt = tmp_path / "ckpt"
    hps = {"num_round": 12, **COMMON}
    # A spot interruption after round 7: the first run stops there (SIGTERM at a round boundary).
    job.setup(hps, {"train": {"ContentType": "text/csv"}}, {("train", "a"): to_csv(X, y)},
              checkpoint={"S3Uri": "s3://bucket/ckpt", "LocalPath": str(ckpt)})
    from smalgos_xgboost import train as train_module

    real_fit = train_module.fit
    rounds = {"n": 0}

    def stop_after_8(*args, **kwargs):
        def should_stop():
            rounds["n"] += 1
            return rounds["n"] > 8
        return real_fit(*args, **{**kwargs, "should_stop": should_stop})

    train_module.fit = stop_after_8
    try:
        assert job.run() == 0
    finally:
        train_module.fit = real_fit
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [f"xgboost-checkpoint.{i}" for i in range(3, 8)]  # the newest five
    # The restarted job finds checkpoint 7 and trains rounds 8..11 only.
    assert job.run() == 0, job.failure
    ours = job.booster()
    assert ours.num_boosted_rounds() == 12
    assert_same_predictions(ours, peer({}, X, y, rounds=12), X)
    assert checkpoints.list_checkpoints(ckpt)[-1][0] == 11


def test_checkpoint_from_aws_17_image_is_resumed(tmp_path):
    """AWS's 1.7-1 image wrote checkpoints in XGBoost's old binary format."""
    from smalgos_xgboost.params import training_plan
    from smalgos_xgboost.declaration import ALGORITHM
    from smalgos_xgboost.train import fit
    from xgb_helpers import FIXTURES

    X = np.nan_to_num(np.load(FIXTURES / "legacy17" / "X.npy"))
    y = (X[:, 1] > 0.5).astype(np.float32)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "xgboost-checkpoint.7").write_bytes((FIXTURES / "legacy17" / "binary.bin").read_bytes())
    plan = training_plan(ALGORITHM.hyperparameters.parse({"num_round": "10", "objective": "binary:logistic"}))
    booster = fit(plan, xgb.DMatrix(X, label=y), checkpoint_dir=ckpt, printer=lambda line: None)
    assert booster.num_boosted_rounds() == 10


def test_save_model_on_termination_writes_the_model_each_round(job):
    X, y = make_data("reg:squarederror")
    from smalgos_xgboost import train as train_module
    from smalgos_xgboost.params import training_plan
    from smalgos_xgboost.declaration import ALGORITHM

    plan = training_plan(ALGORITHM.hyperparameters.parse({"num_round": "5", "save_model_on_termination": "true"}))
    stop = threading.Event()
    seen = []

    def printer(line):
        seen.append(line)
        if len(seen) == 2:
            stop.set()

    train_module.fit(plan, xgb.DMatrix(X, label=y), model_dir=job.paths.model_dir, should_stop=stop.is_set,
                     printer=printer)
    assert job.booster().num_boosted_rounds() == 2


@pytest.mark.parametrize("hps, channels, files, first_line", [
    ({"num_round": 5, "max_dept": 3}, None, None, "ClientError: Unknown hyperparameter: max_dept"),
    ({}, None, None, "ClientError: Missing required hyperparameter: num_round"),
    ({"num_round": 5, "eta": 1.5}, None, None, "ClientError: Hyperparameter eta: value 1.5 is outside the range"),
    ({"num_round": 5, "objective": "multi:softmax"}, None, None,
     "ClientError: Require input for parameter 'num_class'"),
    ({"num_round": 5, "eval_metric": "auc"}, None, None,
     "ClientError: Metric 'auc' can only be applied for classification"),
    ({"num_round": 5}, {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}}, None,
     "ClientError: Extraneous channel found: test"),
    ({"num_round": 5, "objective": "binary:logistic"}, None, None,
     "ClientError: Channel 'train': labels must be in [0, 1] for binary:logistic"),
    ({"num_round": 5}, {"train": {"ContentType": "application/json"}}, None, "ClientError: Channel 'train'"),
])
def test_user_errors_reach_the_failure_file(job, hps, channels, files, first_line):
    X, y = make_data("reg:squarederror")
    job.setup(hps, channels or {"train": {"ContentType": "text/csv"}}, files or {("train", "a"): to_csv(X, y)})
    assert job.run() == 1
    assert job.failure.splitlines()[0].startswith(first_line), job.failure
    assert "Traceback" not in job.failure


def test_csv_sent_as_default_libsvm_says_so(job):
    X, y = make_data("reg:squarederror")
    job.setup({"num_round": 2}, {"train": {}}, {("train", "a.csv"): to_csv(X, y)})
    assert job.run() == 1
    assert job.failure.startswith("ClientError:") and "a.csv" in job.failure


def test_gpu_hist_without_a_gpu_is_a_client_error(job):
    from smalgos_xgboost.train import gpu_available

    if gpu_available()[0]:
        pytest.skip("a GPU is present")
    X, y = make_data("reg:squarederror")
    job.setup({"num_round": 2, "tree_method": "gpu_hist"}, {"train": {"ContentType": "text/csv"}},
              {("train", "a"): to_csv(X, y)})
    assert job.run() == 1
    assert job.failure.startswith("ClientError: tree_method=gpu_hist needs a GPU")


@pytest.mark.parametrize("booster", ["gblinear", "dart"])
def test_early_stopping_with_other_boosters_trains_and_serves(booster):
    from smalgos.environment import ServingEnv
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.declaration import ALGORITHM
    from smalgos_xgboost.params import training_plan
    from smalgos_xgboost.serve import XGBoostModel
    from smalgos_xgboost.train import fit

    X, y = make_data("reg:squarederror", n=300)
    plan = training_plan(ALGORITHM.hyperparameters.parse(
        {"num_round": "100", "booster": booster, "early_stopping_rounds": "2", "eta": "0.9"}))
    b = fit(plan, xgb.DMatrix(X[:200], label=y[:200]), xgb.DMatrix(X[200:], label=y[200:]),
            printer=lambda line: None)
    assert b.attr("best_iteration") is not None
    model = XGBoostModel([b], ServingEnv.from_env({}))
    assert model.raw_predict(Batch(X[:5])).shape == (5,)


def test_csv_channel_of_several_files_plain_and_gzip_trains_as_one_table(job, tmp_path):
    """File mode reads each plain CSV file whole (one pandas read of the path) and streams gzip
    files: the model is the one plain XGBoost trains on all rows in order."""
    import gzip

    X, y = make_data("binary:logistic", n=3000, missing=0.05)
    parts = [slice(0, 1000), slice(1000, 2000), slice(2000, 3000)]
    files = {("train", "a/part-0.csv"): to_csv(X[parts[0]], y[parts[0]]),
             ("train", "a/part-1.csv.gz"): gzip.compress(to_csv(X[parts[1]], y[parts[1]])),
             ("train", "b/part-2.csv"): to_csv(X[parts[2]], y[parts[2]])}
    job.setup({"num_round": ROUNDS, "objective": "binary:logistic", **COMMON}, {"train": {"ContentType": "text/csv"}},
              files)
    assert job.run() == 0, job.failure
    assert_same_predictions(job.booster(), peer({"objective": "binary:logistic"}, X, y), X)


@pytest.mark.parametrize("bad, fragment", [
    (b"1,0.5,0.25\n", "part-1.csv: line 3 has 3 columns, but line 1 has 7"),
    (b"1,0.5,x,0,0,0,0\n", "part-1.csv: line 3, column 3: 'x' is not a number"),
])
def test_csv_fault_in_a_large_file_names_file_line_and_column(job, bad, fragment):
    X, y = make_data("reg:squarederror", n=4000)
    body = to_csv(X, y).split(b"\n")
    body[2] = bad.rstrip(b"\n")
    job.setup({"num_round": 2}, {"train": {"ContentType": "text/csv"}},
              {("train", "part-0.csv"): to_csv(X, y), ("train", "part-1.csv"): b"\n".join(body)})
    assert job.run() == 1
    assert job.failure.startswith("ClientError:") and fragment in job.failure, job.failure


def test_csv_files_of_different_widths_are_named(job):
    X, y = make_data("reg:squarederror", n=50)
    job.setup({"num_round": 2}, {"train": {"ContentType": "text/csv"}},
              {("train", "part-0.csv"): to_csv(X, y), ("train", "part-1.csv"): to_csv(X[:, :4], y)})
    assert job.run() == 1
    first = job.failure.splitlines()[0]
    assert first.startswith("ClientError: Channel 'train':") and "part-1.csv has 4 feature column(s)" in first
    assert "part-0.csv" in first and "has 6" in first


def test_sigterm_during_an_arrow_csv_read_exits_143_not_1(job, monkeypatch):
    """Arrow's reader listens for SIGTERM while it runs: it hands the signal to the runner's handler
    and gives up with ArrowCancelled, which must end as a stop (143, "Stopped"), not a failure (1)."""
    import gzip
    import os
    import signal

    import pyarrow as pa
    import pyarrow.csv as pacsv

    X, y = make_data("reg:squarederror", n=4000)
    job.setup({"num_round": 2}, {"train": {"ContentType": "text/csv"}},
              {("train", "part-0.csv.gz"): gzip.compress(to_csv(X, y))})  # gzip: streamed, Arrow per block

    def sigterm_mid_read(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # what Arrow does: the signal goes on to Python's handler
        raise pa.ArrowCancelled("Operation cancelled. Detail: received signal 15", signum=signal.SIGTERM)

    monkeypatch.setattr(pacsv, "read_csv", sigterm_mid_read)
    from smalgos.training.runner import run_training
    from smalgos_xgboost.declaration import ALGORITHM

    previous = signal.getsignal(signal.SIGTERM)
    try:
        rc = run_training(ALGORITHM, job.paths, install_signal_handler=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert rc == 143, job.failure
    assert job.failure.startswith("Stopped:")


def test_csv_byte_order_mark_is_skipped_and_true_false_refused(job):
    """Excel's UTF-8 mark at the start of a file is skipped (whole-file and streamed reads alike);
    true/false cells, which pandas alone would read as 1/0, are refused naming file, line and column."""
    import gzip

    X, y = make_data("reg:squarederror", n=3000)
    body = to_csv(X, y)
    job.setup({"num_round": ROUNDS, **COMMON}, {"train": {"ContentType": "text/csv"}},
              {("train", "a.csv"): b"\xef\xbb\xbf" + body,
               ("train", "b.csv.gz"): gzip.compress(b"\xef\xbb\xbf" + body)})
    assert job.run() == 0, job.failure
    assert_same_predictions(job.booster(), peer({}, np.vstack([X, X]), np.concatenate([y, y])), X)

    lines = body.split(b"\n")[:-1]
    flags = b"\n".join(b"%s,%s,%s" % (ln.split(b",")[0], b"true" if i % 2 else b"false",
                                        b",".join(ln.split(b",")[2:])) for i, ln in enumerate(lines)) + b"\n"
    for name, data in (("c.csv", flags), ("c.csv.gz", gzip.compress(flags))):
        job.setup({"num_round": 2}, {"train": {"ContentType": "text/csv"}}, {("train", name): data})
        for other in job.paths.channel_dir("train").iterdir():
            if other.name != name:
                other.unlink()
        assert job.run() == 1
        assert job.failure.startswith("ClientError:"), job.failure
        assert f"{name}: line 1, column 2: 'false' is not a number" in job.failure, job.failure


# -- Rounds actually done on SIGTERM; infinite feature values refused by channel ---------------------


def test_sigterm_log_states_the_rounds_actually_done(caplog):
    from smalgos_xgboost import train as train_module
    from smalgos_xgboost.declaration import ALGORITHM
    from smalgos_xgboost.params import training_plan

    X, y = make_data("reg:squarederror")
    plan = training_plan(ALGORITHM.hyperparameters.parse({"num_round": "10"}))
    seen = []
    caplog.set_level("INFO", logger="smalgos")
    booster = train_module.fit(plan, xgb.DMatrix(X, label=y), should_stop=lambda: len(seen) >= 3,
                               printer=seen.append)
    assert booster.num_boosted_rounds() == 3
    assert "Stopping after 3 of 10 round(s) (3 in this run): SIGTERM received" in caplog.text, caplog.text
    assert "Boosted 3 round(s)" in caplog.text and "Boosted 10 round(s)" not in caplog.text


@pytest.mark.parametrize("fmt", ["csv", "libsvm"])
def test_infinite_feature_values_are_refused_naming_channel_record_and_column(job, fmt):
    X, y = make_data("reg:squarederror", n=50)
    X = np.nan_to_num(X, nan=1.0)
    X[2, 1] = np.inf
    X[7, 3] = -np.inf
    write = to_csv if fmt == "csv" else to_libsvm
    job.setup({"num_round": 2}, {"train": {"ContentType": "text/csv" if fmt == "csv" else "text/libsvm"}},
              {("train", f"part-0.{fmt}"): write(X, y)})
    assert job.run() == 1
    first = job.failure.splitlines()[0]
    assert first.startswith("ClientError: Channel 'train': "), first
    place = "line" if fmt == "csv" else "record"  # libsvm is read as records
    assert (f"2 feature value(s) are infinite, the first in {place} 3 of " in first
            and f"part-0.{fmt} (feature column 2); features must be finite numbers, or NaN for a missing value"
            in first), first
    assert "Traceback" not in job.failure

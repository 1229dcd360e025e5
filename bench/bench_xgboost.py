"""XGBoost: our training path vs plain `xgboost.train`, and our `/invocations` vs MLflow's server.

    python bench/bench_xgboost.py                     # both parts, about 3-4 min on 2 cores
    python bench/bench_xgboost.py --part train --rows 200000 --pandas
    python bench/bench_xgboost.py --part serve --workers 2 --clients 4   # saturated, 2 workers each

Training (goal: ours <= 1.05x the peer, ingestion included). The same CSV file (label first, no
header, `--rows` x `--features`, float32 values) and the same parameters
(binary:logistic, hist, max_depth 6, eta 0.1, `--rounds` rounds, all cores) go through
  ours:  run_training in-process over an /opt/ml tree (LocalJob): config validation, the CSV
         channel decoder, DMatrix, the boosting loop with AWS's log lines, model file written;
  peer:  plain Python: XGBoost's own CSV loader (`DMatrix("f.csv?format=csv&label_column=0")`,
         what AWS's image used for CSV in File mode), `xgboost.train`, `save_model`;
  peer+train-eval: the same with `evals=[(dtrain, "train")]`: AWS's image (and ours) evaluates and
         prints the train metric every round, which costs ~0.1 s CPU per round at 1M rows;
  peer2: (--pandas) the same with pandas.read_csv for ingestion.
The predictions of our model and the peer's are compared (they must agree to 1e-6).

Serving (goal: ours >= 3x MLflow's requests/s). The trained model, served with one worker each:
  ours:   `python -m smalgos.cli serve` (gunicorn + the spine's Flask app + smalgos_xgboost);
  mlflow: the model saved with `mlflow.xgboost.save_model`, served by the command
          `mlflow models serve --env-manager local` runs (`uvicorn mlflow.pyfunc.scoring_server.app:app`).
`--workers` worker processes each (default 1). Default: one client, one connection per server,
requests back to back, the servers taking turns in 0.25 s slices for `--seconds` each (so that load
from elsewhere on the machine hits all alike). `--clients N`: N concurrent clients, each on its own
keep-alive connection, the servers taking turns in 1 s slices (saturated throughput). Bodies:
single-row and 1000-row CSV bodies (6 significant digits; MLflow's CSV carries a header row, ours
none: each in its own convention), JSON answers from all (`Accept: application/json`; MLflow
answers JSON only), checked equal to `Booster.predict` first.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "common", ROOT / "containers" / "xgboost"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

PARAMS = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1}


def make_csv(path: Path, rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32)
    logits = X @ w + 0.5 * np.sin(3 * X[:, 0]) * X[:, 1]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    table = pa.table({"y": y, **{f"f{j}": X[:, j] for j in range(features)}})
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(include_header=False))
    return X, y


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def timed_cpu(fn):
    """(wall s, CPU s of this process's threads, result): CPU time is what others' load on a shared
    machine disturbs least."""
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def bench_training(args, work: Path) -> dict:
    import xgboost as xgb

    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training, setup_logging
    from smalgos_xgboost.declaration import ALGORITHM

    csv_path = work / "train.csv"
    t_gen, (X, _) = timed(lambda: make_csv(csv_path, args.rows, args.features))
    size_mb = csv_path.stat().st_size / 1e6
    print(f"data: {args.rows} rows x {args.features} features, {size_mb:.0f} MB CSV (made in {t_gen:.1f} s)",
          flush=True)

    def ours():
        job = LocalJob(work / "job")
        job.write_config({"num_round": args.rounds, **PARAMS}, {"train": {"ContentType": "text/csv"}})
        target = job.paths.channel_dir("train") / "train.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(csv_path, target)
        setup_logging()  # its handler keeps the real stdout; only the per-round lines are silenced
        logging.getLogger("smalgos").setLevel(logging.WARNING)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            rc = run_training(ALGORITHM, job.paths, install_signal_handler=False)
        assert rc == 0, job.failure
        return job.paths.model_dir / "xgboost-model"  # loaded after the clock stops

    def peer_native():
        dtrain = xgb.DMatrix(f"{csv_path}?format=csv&label_column=0")
        booster = xgb.train(PARAMS, dtrain, args.rounds)
        booster.save_model(str(work / "peer.ubj"))
        return booster

    def peer_native_watch():
        dtrain = xgb.DMatrix(f"{csv_path}?format=csv&label_column=0")
        booster = xgb.train(PARAMS, dtrain, args.rounds, evals=[(dtrain, "train")], verbose_eval=True)
        booster.save_model(str(work / "peer3.ubj"))
        return booster

    def peer_pandas():
        import pandas as pd

        df = pd.read_csv(csv_path, header=None, dtype=np.float32)
        dtrain = xgb.DMatrix(df.iloc[:, 1:].to_numpy(), label=df.iloc[:, 0].to_numpy())
        booster = xgb.train(PARAMS, dtrain, args.rounds)
        booster.save_model(str(work / "peer2.ubj"))
        return booster

    import warnings

    warnings.filterwarnings("ignore", message=".*Text file input has been deprecated.*")
    results, cpu = {}, {}
    boosters = {}
    runs = [("ours", ours), ("peer: xgboost CSV loader", peer_native),
            ("peer+train-eval (as AWS)", peer_native_watch)]
    if args.pandas:
        runs.append(("peer2: pandas.read_csv", peer_pandas))
    for repeat in range(args.repeats):
        for name, fn in runs:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                t, c, boosters[name] = timed_cpu(fn)
            results.setdefault(name, []).append(t)
            cpu.setdefault(name, []).append(c)
            print(f"  [{repeat}] {name:28s} {t:7.2f} s wall  {c:7.2f} s CPU", flush=True)
    ours_model = xgb.Booster()
    ours_model.load_model(bytearray(boosters["ours"].read_bytes()))
    boosters["ours"] = ours_model
    best = {k: min(v) for k, v in results.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    d = xgb.DMatrix(X[:20000])
    diff = float(np.max(np.abs(boosters["ours"].predict(d) - boosters["peer: xgboost CSV loader"].predict(d))))
    peer = min(v for k, v in best.items() if k not in ("ours", "peer+train-eval (as AWS)"))
    out = {"rows": args.rows, "features": args.features, "rounds": args.rounds, "csv_mb": round(size_mb),
           "seconds": {k: round(v, 2) for k, v in best.items()},
           "cpu_seconds": {k: round(v, 2) for k, v in best_cpu.items()},
           "ratio_vs_fastest_peer": round(best["ours"] / peer, 3),
           "cpu_ratio_vs_fastest_peer": round(best_cpu["ours"] / min(v for k, v in best_cpu.items()
                                                                      if k not in ("ours", "peer+train-eval (as AWS)")), 3),
           "ratio_vs_peer_with_train_eval": round(best["ours"] / best["peer+train-eval (as AWS)"], 3),
           "max_abs_prediction_diff_vs_peer": diff}
    (work / "model").mkdir(exist_ok=True)
    shutil.copy(work / "job" / "model" / "xgboost-model", work / "model" / "xgboost-model")
    return out


# ------------------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become ready")


def start(cmd, env, port, ping):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            shell=isinstance(cmd, str), start_new_session=True)
    try:
        wait_ready(port, ping, proc)
    except Exception:
        stop(proc)
        raise
    return proc


def stop(proc) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def bench_serving(args, work: Path) -> dict:
    import xgboost as xgb

    model_dir = work / "model"
    if not (model_dir / "xgboost-model").exists():  # --part serve: a quick model of the same shape
        X, y = make_csv(work / "small.csv", 50_000, args.features)
        booster = xgb.train(PARAMS, xgb.DMatrix(X, label=y), args.rounds)
        model_dir.mkdir(exist_ok=True)
        (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    booster = xgb.Booster()
    booster.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((1000, args.features), dtype=np.float32)

    def csv(block, header=False):
        text = "\n".join(",".join(f"{v:.6g}" for v in r) for r in block) + "\n"
        if header:
            text = ",".join(f"f{j}" for j in range(args.features)) + "\n" + text
        return text.encode()

    bodies = {"1 row": rows[:1], "1000 rows": rows}
    servers = {}  # label -> (port, process, headers, header row?)
    base_env = {**os.environ, "SMALGOS_ALGORITHM": "xgboost", "SAGEMAKER_BASE_DIR": str(work),
                "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "common"), str(ROOT / "containers" / "xgboost"),
                                               os.environ.get("PYTHONPATH", "")])}
    # ours: the `serve` program as the image runs it; noop: the same program and settings serving
    # tests/algorithms/smalgos_test_noop (a model that counts the body's lines and answers zeros):
    # the floor of the HTTP / Flask / negotiation / encoding stack.
    noop_env = {"SMALGOS_ALGORITHM": "test-noop",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "algorithms"), base_env["PYTHONPATH"]])}
    launch = [("ours", [sys.executable, "-m", "smalgos.cli", "serve"], {}),
              ("noop", [sys.executable, "-m", "smalgos.cli", "serve"], noop_env)]
    try:
        for label, cmd, extra in launch:
            port = free_port()
            proc = start(cmd, {**base_env, **extra, "SAGEMAKER_BIND_TO_PORT": str(port)}, port, "/ping")
            servers[label] = (port, proc, {"Content-Type": "text/csv", "Accept": "application/json"}, False)
        try:
            port = free_port()
            cmd, env = mlflow_server(args, model_dir, work / "mlflow-model", port)
            # The thread budget ours sets itself (cores // workers), given to MLflow's workers too:
            # without it two MLflow workers oversubscribe the cores with OpenMP threads.
            env = {**env, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.workers))}
            servers["mlflow"] = (port, start(cmd, env, port, "/ping"), {"Content-Type": "text/csv"}, True)
        except (ImportError, subprocess.CalledProcessError) as exc:
            print(f"  MLflow not available ({exc}): ours only", flush=True)

        out = {}
        for name, block in bodies.items():
            want = booster.predict(xgb.DMatrix(np.array([[float(f"{v:.6g}") for v in r] for r in block],
                                                        dtype=np.float32)))
            conns = {}
            for label, (port, _, headers, header_row) in servers.items():
                body = csv(block, header=header_row)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/invocations", body=body, headers=headers)
                got = json.loads(conn.getresponse().read())["predictions"]
                got = np.array([g["score"] if isinstance(g, dict) else g for g in got], dtype=np.float32)
                if label != "noop":  # every model server gives the same answer
                    np.testing.assert_allclose(got, want, atol=1e-6)
                conns[label] = (conn, body, headers, [])
            if args.clients == 1:
                res = sequential(conns, args.seconds)
            else:
                res = concurrent(servers, conns, args.clients, args.seconds)
            if "noop" in res:
                res["ours_vs_noop_floor"] = round(res["ours"]["rps"] / res["noop"]["rps"], 2)
            if "mlflow" in res:
                res["speedup_vs_mlflow"] = {k: round(res[k]["rps"] / res["mlflow"]["rps"], 2)
                                            for k in ("ours",)}
            out[name] = res
            print(f"  {name}: " + json.dumps(res), flush=True)
        return out
    finally:
        for _, proc, _, _ in servers.values():
            stop(proc)


# Run by `--mlflow-python`: the model saved for MLflow, then its server's command and environment.
MLFLOW_SIDE = """
import contextlib, json, os, sys
import mlflow.xgboost, xgboost
from mlflow.pyfunc import scoring_server
booster_file, mlflow_dir, port, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if not os.path.exists(mlflow_dir):
    booster = xgboost.Booster()
    booster.load_model(bytearray(open(booster_file, "rb").read()))
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        mlflow.xgboost.save_model(booster, mlflow_dir)
cmd, env = scoring_server.get_cmd(mlflow_dir, port=port, host="127.0.0.1", nworkers=workers)
print(json.dumps([cmd, env]))
"""


def mlflow_server(args, model_dir: Path, mlflow_dir: Path, port: int) -> tuple:
    """MLflow's scoring-server command and environment, the model saved for it first: in this
    interpreter, or with `--mlflow-python` in another (MLflow in a virtualenv of its own, whose
    pins, e.g. an older gunicorn, then never change what ours runs on)."""
    python = args.mlflow_python or sys.executable
    out = subprocess.run([str(python), "-c", MLFLOW_SIDE, str(model_dir / "xgboost-model"), str(mlflow_dir),
                          str(port), str(args.workers)], check=True, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    cmd, env = json.loads(out.stdout.strip().splitlines()[-1])
    if cmd.startswith("uvicorn "):  # its server runs with that interpreter's packages
        cmd = f"{shlex.quote(str(python))} -m {cmd}"
    return cmd, env


def sequential(conns: dict, seconds: float) -> dict:
    """One client, back to back; servers take turns in 0.25 s slices so that load from others on the
    machine hits every server alike. requests/s = requests / time spent waiting for answers."""
    slices = max(1, int(seconds / 0.25))
    for _ in range(slices):
        for label, (conn, body, headers, lat) in conns.items():
            end = time.perf_counter() + 0.25
            while time.perf_counter() < end:
                t = time.perf_counter()
                conn.request("POST", "/invocations", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                assert r.status == 200
                lat.append(time.perf_counter() - t)
    res = {}
    for label, (conn, _, _, lat) in conns.items():
        conn.close()
        res[label] = {"rps": round(len(lat) / sum(lat), 1), "p50_ms": round(float(np.median(lat)) * 1e3, 2)}
    return res


def concurrent(servers: dict, conns: dict, clients: int, seconds: float) -> dict:
    """`clients` threads, each on its own keep-alive connection, keep one server busy for 1 s, then
    the next server; turns repeat until each server has had `seconds`. requests/s = answers / s."""
    import threading

    counts = {label: 0 for label in conns}
    elapsed = {label: 0.0 for label in conns}

    errors: list[BaseException] = []

    def client(port, body, headers, stop_at, out):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            n = 0
            while time.perf_counter() < stop_at:
                conn.request("POST", "/invocations", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"port {port}: HTTP {r.status}")
                n += 1
            conn.close()
            out.append(n)
        except BaseException as exc:  # reported after the join: a silent thread would undercount
            errors.append(exc)

    for _ in range(max(1, int(seconds))):
        for label, (conn, body, headers, _) in conns.items():
            port = servers[label][0]
            out: list[int] = []
            start = time.perf_counter()
            threads = [threading.Thread(target=client, args=(port, body, headers, start + 1.0, out))
                       for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            elapsed[label] += time.perf_counter() - start
            counts[label] += sum(out)
    for conn, *_ in conns.values():
        conn.close()
    return {label: {"rps": round(counts[label] / elapsed[label], 1)} for label in conns}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "train", "serve"), default="all")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=28)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--pandas", action="store_true", help="also time pandas.read_csv as the peer's ingestion")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1, help="server worker processes, the same for each server")
    ap.add_argument("--clients", type=int, default=1,
                    help="1: one client, back to back (latency-bound); more: that many concurrent clients")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--mlflow-python", type=Path, default=None,
                    help="the Python that has MLflow (e.g. a virtualenv's bin/python); default: this one")
    args = ap.parse_args(argv)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-xgb-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"cpus": os.cpu_count()}
    try:
        if args.part in ("all", "train"):
            print("== training ==", flush=True)
            report["training"] = bench_training(args, work)
        if args.part in ("all", "serve"):
            print("== /invocations ==", flush=True)
            report["serving"] = bench_serving(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

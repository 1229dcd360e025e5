"""Wire-format throughput: ours against the reference readers, same bytes, same process.

    python bench/bench_formats.py [--quick]

- recordIO-protobuf dense float32 (200k x 100, labels) and sparse (50k x 1000, 5 % non-zero):
  `smalgos.formats.protobuf.decode` against the SageMaker SDK v2's `read_records` followed by the
  conversion to numpy / CSR that a user of it has to write.
- CSV (100k x 20): `parse_csv` against `pandas.read_csv` (pandas is a bench/test dependency only).
- LibSVM (300k x 28, 70 % non-zero): the decoder as a training channel streams it (1 MiB chunks)
  against XGBoost's own reader of the same file
  (when xgboost is installed); with numba installed, a second row: the numpy parser alone.
- JSON: a 1000-row response (3 fields) encoded, a 1000 x 100 request decoded.

Prints one table; MB/s are of input bytes (of output bytes for encoders). Runs in well under
two minutes on two cores.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.disable(logging.WARNING)

from smalgos.formats import (JSONEncoder, Predictions, decode_json, parse_csv,  # noqa: E402
                             LibSVMDecoder, parse_media_type, sparse_to_recordio)
from smalgos.formats import protobuf as pb  # noqa: E402


def best_of(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sdk_dense_to_numpy(data: bytes):
    from sagemaker.amazon.common import read_records

    # np.fromiter per record: the fastest conversion of the runtime's repeated fields we found
    records = read_records(io.BytesIO(data))
    X = np.vstack([np.fromiter(r.features["values"].float32_tensor.values, np.float32)
                   for r in records])
    y = np.array([r.label["values"].float32_tensor.values[0] for r in records], dtype=np.float32)
    return X, y


def sdk_read_records_only(data: bytes):
    from sagemaker.amazon.common import read_records

    return read_records(io.BytesIO(data))


def sdk_sparse_to_csr(data: bytes, width: int):
    from sagemaker.amazon.common import read_records

    records = read_records(io.BytesIO(data))
    vals, cols, counts = [], [], []
    for r in records:
        t = r.features["values"].float32_tensor
        vals.append(np.fromiter(t.values, np.float32))
        cols.append(np.fromiter(t.keys, np.int64))
        counts.append(len(t.keys))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr),
                         shape=(len(records), width))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    rng = np.random.default_rng(0)
    rows = []

    def row(name, nbytes, ours, ref, ref_name):
        rows.append((name, nbytes / 1e6, ours, ref, ref_name))

    # -- recordIO-protobuf, dense float32 --------------------------------------------------
    n, d = 200_000 // scale, 100
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.float32)
    data = pb.dense_to_recordio(X, y)
    from sagemaker.amazon.common import write_numpy_to_dense_tensor
    check = io.BytesIO()
    write_numpy_to_dense_tensor(check, X[:500], y[:500])
    assert data.startswith(check.getvalue()), "writer differs from the SDK's"
    t_ours, batch = best_of(lambda: pb.decode(data), 5)
    t_ref, (Xr, yr) = best_of(lambda: sdk_dense_to_numpy(data), 1)
    assert np.array_equal(batch.features, Xr) and np.array_equal(batch.labels, yr)
    row(f"protobuf dense f32 {n}x{d}", len(data), t_ours, t_ref, "SDK read_records->numpy")
    t_parse, _ = best_of(lambda: sdk_read_records_only(data), 1)
    row("  same, reference without numpy", len(data), t_ours, t_parse, "SDK read_records alone")

    # -- recordIO-protobuf, sparse ---------------------------------------------------------
    n, d = 50_000 // scale, 1000
    M = sp.random(n, d, density=0.05, random_state=1, format="csr", dtype=np.float32)
    data = sparse_to_recordio(M, np.ones(n, np.float32))
    t_ours, batch = best_of(lambda: pb.decode(data), 5)
    t_ref, ref = best_of(lambda: sdk_sparse_to_csr(data, d), 1)
    assert (batch.features != ref).nnz == 0
    row(f"protobuf sparse {n}x{d} 5%", len(data), t_ours, t_ref, "SDK read_records->CSR")

    # -- CSV ----------------------------------------------------------------------------------
    import pandas as pd

    n, d = 100_000 // scale, 20
    Xc = rng.standard_normal((n, d)).astype(np.float32)
    text = pd.DataFrame(Xc).to_csv(header=False, index=False, float_format="%.7g").encode()
    t_ours, batch = best_of(lambda: parse_csv(text, label_size=1), 3)
    t_ref, df = best_of(lambda: pd.read_csv(io.BytesIO(text), header=None, dtype=np.float32), 3)
    assert np.array_equal(batch.features, df.to_numpy()[:, 1:])
    row(f"CSV {n}x{d}", len(text), t_ours, t_ref, "pandas.read_csv")

    # -- LibSVM (XGBoost's default content type) -------------------------------------------------
    try:
        import xgboost as xgb
    except ImportError:
        xgb = None
    if xgb is not None:
        import tempfile
        import warnings

        n, d = 300_000 // scale, 28
        Xl = np.where(rng.random((n, d)) < 0.3, 0, rng.standard_normal((n, d))).astype(np.float32)
        yl = rng.integers(0, 2, n)
        lines = (f"{yl[i]} " + " ".join(f"{j}:{Xl[i, j]:.6g}" for j in np.flatnonzero(Xl[i])) for i in range(n))
        text = ("\n".join(lines) + "\n").encode()
        with tempfile.NamedTemporaryFile(suffix=".libsvm") as f:
            f.write(text)
            f.flush()
            dec, media = LibSVMDecoder(), parse_media_type("text/libsvm")

            def ours_stream():  # what a training channel does: 1 MiB chunks, one batch
                return next(dec.iter_batches(io.BytesIO(text), media, batch_size=n, zero_based=True))

            t_ours, batch = best_of(ours_stream, 3)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # XGBoost 3.1+ calls text input deprecated
                t_ref, dm = best_of(lambda: xgb.DMatrix(f"{f.name}?format=libsvm"), 3)
        assert batch.features.nnz == dm.num_nonmissing()
        from smalgos.formats import libsvm
        kernel = libsvm._kernel() is not None
        row(f"LibSVM {n}x{d} 70% non-zero{' (numba)' if kernel else ''}", len(text), t_ours, t_ref,
            "XGBoost's own LibSVM reader")
        if kernel:  # the same stream through the numpy parser alone (an image without numba)
            get_kernel, libsvm._kernel = libsvm._kernel, lambda: None
            try:
                t_numpy, _ = best_of(ours_stream, 3)
            finally:
                libsvm._kernel = get_kernel
            row(f"LibSVM {n}x{d} 70% non-zero (numpy)", len(text), t_numpy, t_ref, "XGBoost's own LibSVM reader")

    # -- JSON -----------------------------------------------------------------------------------
    preds = Predictions({"predicted_label": rng.integers(0, 2, 1000),
                         "score": rng.random(1000).astype(np.float32),
                         "probs": rng.random((1000, 2)).astype(np.float32)})
    enc = JSONEncoder()
    t_ours, out = best_of(lambda: enc.encode(preds), 20)

    def stdlib_json():  # what a naive encoder does: float32 → Python float → long repr
        return json.dumps({"predictions": [
            {"predicted_label": float(a), "score": float(b), "probs": [float(v) for v in c]}
            for a, b, c in zip(preds.fields["predicted_label"], preds.fields["score"],
                               preds.fields["probs"])]}).encode()

    t_ref, _ = best_of(stdlib_json, 20)
    row("JSON encode 1000 rows x 3 fields", len(out), t_ours, t_ref, "json.dumps of floats (long repr)")
    req = json.dumps({"instances": [{"features": r} for r in
                                    rng.standard_normal((1000, 100)).round(4).tolist()]}).encode()
    t_ours, batch = best_of(lambda: decode_json(req), 10)
    t_ref, _ = best_of(lambda: np.array([i["features"] for i in json.loads(req)["instances"]],
                                        dtype=np.float32), 10)
    row("JSON decode 1000x100 request", len(req), t_ours, t_ref, "json.loads + np.array")

    print(f"{'case':38} {'MB':>7} {'ours ms':>9} {'ours MB/s':>10} {'ref ms':>9} {'ref MB/s':>9} "
          f"{'ratio':>6}  reference")
    for name, mb, ours, ref, ref_name in rows:
        print(f"{name:38} {mb:7.2f} {ours * 1e3:9.1f} {mb / ours:10.1f} {ref * 1e3:9.1f} "
              f"{mb / ref:9.1f} {ref / ours:5.1f}x  {ref_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The numba kernel of the LibSVM stream decoder against the numpy parser: same batches on valid
text, the same ClientError on invalid text, in both the threaded and the single-worker path."""

import io
import subprocess
import sys

import numpy as np
import pytest

import smalgos.formats.libsvm as libsvm
from smalgos.errors import ClientError
from smalgos.formats import LibSVMDecoder, parse_media_type

LIBSVM = parse_media_type("text/libsvm")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """The kernel for blocks of any size (tests use small chunk sizes); it must be installed."""
    assert libsvm._kernel() is not None, "numba is a test dependency (the xgboost extra)"
    monkeypatch.setattr(libsvm, "KERNEL_MIN_BLOCK", 0)


def decode(body: bytes, *, kernel=True, chunk_size=64, zero_based="auto", batch_size=10**9):
    """All batches, or the ClientError's message."""
    import unittest.mock as mock

    with mock.patch.object(libsvm, "_kernel", libsvm._kernel if kernel else lambda: None):
        try:
            return list(LibSVMDecoder().iter_batches(io.BytesIO(body), LIBSVM, batch_size=batch_size,
                                                     source="train", zero_based=zero_based,
                                                     chunk_size=chunk_size))
        except ClientError as e:
            return e.message


def assert_same(got, want):
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert len(got) == len(want)
    for a, b in zip(got, want):
        fa, fb = a.features, b.features
        assert fa.shape == fb.shape and fa.dtype == fb.dtype == np.float32
        assert fa.indices.dtype == fb.indices.dtype and fa.indptr.dtype == fb.indptr.dtype
        np.testing.assert_array_equal(fa.indptr, fb.indptr)
        np.testing.assert_array_equal(fa.indices, fb.indices)
        np.testing.assert_array_equal(fa.data.view(np.uint32), fb.data.view(np.uint32))  # -0.0 too
        np.testing.assert_array_equal(a.labels.view(np.uint32), b.labels.view(np.uint32))
        assert (a.weights is None) == (b.weights is None)
        if a.weights is not None:
            np.testing.assert_array_equal(a.weights.view(np.uint32), b.weights.view(np.uint32))


def spell(rng, x: float) -> str:
    """One of many ways to write about x: some in the kernel's grammar, some not (it declines)."""
    k = rng.integers(40)
    s = repr(float(x)) if k == 11 else str(np.float32(x))   # float64's repr: often 17 digits
    if k == 0:
        return f"{x:.6g}"
    if k == 1:
        return f"{x:.3e}"
    if k == 2:
        return f"{x:E}"
    if k == 3:
        return ("+" if x >= 0 else "") + f"{x:.4f}"
    if k == 4:
        return f"{x:.5f}".replace("0.", ".", 1)             # .5, -.25
    if k == 5:
        return f"{round(x)}."                              # 5.
    if k == 6:
        return "00" + f"{abs(x):.3f}"
    if k == 7:
        return f"{int(x * 1e6)}e-6"
    if k == 8:
        return f"{x:.17g}"                                 # 17 significant digits: declined
    if k == 9:
        return str(rng.choice(["-0", "0", "1e22", "3e-22", "1e23", "12345678901234567e5", "9007199254740993",
                               "4.5e15", "1E+3", "5.e2", "-.5e-3", "7e0"]))
    if k == 10 and rng.random() < 0.1:
        return str(rng.choice(["nan", "inf", "-inf", "1e400", "1e-400", "1.5e-310"]))
    return s


def random_text(rng, rows=60, one_based=False, weights=True, fancy=True) -> bytes:
    spell_ = spell if fancy else lambda rng, x: f"{x:.6g}"
    lines = []
    for _ in range(rows):
        if rng.random() < 0.05:
            lines.append(str(rng.choice(["", " ", "\t", "\r"])))
            continue
        label = spell_(rng, float(rng.integers(-2, 3)) if rng.random() < 0.5 else float(rng.normal()))
        if weights and rng.random() < 0.3:
            label += ":" + spell_(rng, float(rng.random() * 3))
        cols = np.sort(rng.choice(40, rng.integers(0, 8), replace=False)) + int(one_based)
        toks = [label] + [f"{'0' * rng.integers(0, 2) * int(c > 0)}{c}:{spell_(rng, float(rng.normal()))}"
                          for c in cols]
        sep = str(rng.choice([" ", "  ", "\t", " \t"]))
        lines.append(sep.join(toks) + str(rng.choice(["", " ", "\r"])))
    return "\n".join(lines).encode() + (b"\n" if rng.random() < 0.7 else b"")


@pytest.mark.parametrize("seed", range(40))
def test_valid_text_gives_the_same_batches(seed):
    rng = np.random.default_rng(seed)
    body = random_text(rng, one_based=bool(seed % 2), weights=seed % 3 > 0)
    for zero_based in ("auto", True, seed % 2 == 0):
        chunk = int(rng.integers(16, 400))
        want = decode(body, kernel=False, chunk_size=chunk, zero_based=zero_based, batch_size=17)
        got = decode(body, chunk_size=chunk, zero_based=zero_based, batch_size=17)
        assert not isinstance(want, str) or "1-based" in want or "not a number" in want, want
        assert_same(got, want)


def scan_one(text: bytes):
    ok, labels, *_ = libsvm._scan(text + b"\n")
    return labels[0] if ok else None


def test_the_kernel_reads_its_grammar_exactly_and_declines_the_rest():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        m = str(int(rng.integers(0, 2**53 + 1)))[:int(rng.integers(1, 17))]
        point = int(rng.integers(0, len(m) + 1))
        text = f"{rng.choice(['', '-', '+'])}{m[:point]}.{m[point:]}" if rng.random() < 0.6 else m
        if rng.random() < 0.7:
            text += f"{rng.choice(['e', 'E'])}{rng.choice(['', '-', '+'])}{int(rng.integers(0, 30))}"
        got = scan_one(text.encode())
        if got is not None:
            assert got.view(np.uint32) == np.float32(float(text)).view(np.uint32), text
    for text in ["1", "-0", ".5", "5.", "+.5e-3", "007", "1e22", "9007199254740992", "3.25E+2"]:
        assert scan_one(text.encode()).view(np.uint32) == np.float32(float(text)).view(np.uint32), text
    for text in ["nan", "inf", "1e23", "1e-23", "9007199254740993", "12345678901234567", "0x10", "1_0",
                 ".", "1e", "1e+", "1.5E-", "e5", "--1", "+-1", "1.2.3", "1,5", "1:", ":1", "\xff"]:
        assert scan_one(text.encode()) is None, text
    assert not libsvm._scan(b"1 1234567890123456:1\n")[0]                 # an index past 2^53: declined


CORRUPTIONS = [b":", b" ", b"x", b".", b"e", b"-", b"\n", b"_", b"0", b"::", b"1.5", b"\x0b", b"+", b"E9"]


@pytest.mark.parametrize("seed", range(60))
def test_invalid_text_gives_the_same_error(seed):
    rng = np.random.default_rng(1000 + seed)
    body = bytearray(random_text(rng, rows=40, one_based=bool(seed % 2)))
    for _ in range(rng.integers(1, 4)):
        at = int(rng.integers(len(body)))
        body[at:at + int(rng.integers(0, 2))] = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
    body = bytes(body)
    for zero_based in ("auto", bool(seed % 3)):
        chunk = int(rng.integers(16, 300))
        want = decode(body, kernel=False, chunk_size=chunk, zero_based=zero_based)
        assert_same(decode(body, chunk_size=chunk, zero_based=zero_based), want)


def test_many_blocks_threaded_equal_one_worker_and_numpy(monkeypatch):
    body = random_text(np.random.default_rng(7), rows=3000, fancy=False)
    want = decode(body, kernel=False, chunk_size=500, batch_size=1000, zero_based=True)
    assert not isinstance(want, str)
    read = []
    from_scan = libsvm._from_scan
    monkeypatch.setattr(libsvm, "_from_scan", lambda *a: read.append(from_scan(*a)) or read[-1])
    assert_same(decode(body, chunk_size=500, batch_size=1000, zero_based=True), want)
    assert len(read) > 100 and all(r is not None for r in read)       # every block: the kernel's
    monkeypatch.setattr(libsvm, "_WORKERS", 1)
    monkeypatch.setattr(libsvm, "_IN_FLIGHT", 0)
    assert_same(decode(body, chunk_size=500, batch_size=1000, zero_based=True), want)


def test_the_first_bad_block_in_file_order_wins():
    good = b"".join(b"1 1:%d 2:0.5\n" % i for i in range(100))
    body = good + b"1 1:2 x\n" + good * 3 + b"1 2:3:4\n" + good       # the later error is seen first
    msg = decode(body, chunk_size=300)
    assert msg == "train: line 101: token 'x' is not '<index>:<value>'"
    assert decode(body, kernel=False, chunk_size=300) == msg


def test_auto_is_settled_by_the_first_block_with_features():
    head = b"1\n0\n" * 50                                              # label-only lines: unsettled
    one_based = b"".join(b"1 %d:1\n" % (1 + i % 5) for i in range(100))
    got = decode(head + one_based + b"0 0:2\n", chunk_size=200)
    assert got == "train: line 201: token '0:2' has index 0, but indices were declared 1-based"
    batches = decode(head + one_based.replace(b" 5:", b" 0:") + one_based, chunk_size=200)
    want = decode(head + one_based.replace(b" 5:", b" 0:") + one_based, kernel=False, chunk_size=200)
    assert_same(batches, want)
    assert batches[0].num_features == 6                                # zero-based: 0..5 kept


def test_stopping_early_shuts_the_pool_down():
    body = random_text(np.random.default_rng(3), rows=2000, fancy=False)
    it = LibSVMDecoder().iter_batches(io.BytesIO(body), LIBSVM, batch_size=10, chunk_size=256,
                                      zero_based=True)
    next(it)
    it.close()
    import threading
    assert not [t for t in threading.enumerate() if t.name.startswith("libsvm")]


def test_request_bodies_do_not_import_numba():
    code = ("import sys; from smalgos.formats import LibSVMDecoder, parse_media_type; "
            "LibSVMDecoder().decode(b'1 1:2\\n' * 100000, parse_media_type('text/libsvm')); "
            "assert 'numba' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_numba_streams_use_the_numpy_parser_and_the_build_step_is_a_no_op():
    code = ("import io, runpy, sys; sys.modules['numba'] = None; "
            "import smalgos.formats.libsvm as L; from smalgos.formats import parse_media_type; "
            "body = b'1 1:2.5 3:1\\n' * 20000; "
            "b = list(L.LibSVMDecoder().iter_batches(io.BytesIO(body), parse_media_type('text/libsvm'))); "
            "assert L._kernel() is None and b[0].features.shape == (1000, 3), b; "
            "sys.argv = ['x']; runpy.run_module('smalgos.formats._libsvm_kernel', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

"""The scoring kernel against the one it replaced (node by node, AWS's fold with a division at
each node: commit f60b636's `forest._score`, kept verbatim below as the reference) and against
the plain reading of AWS's formula in test_rcf.py: same scores up to float rounding on random
forests of every shape, on both partition paths, any block size, any data scale."""
import numba
import numpy as np
import pytest

from smalgos_randomcutforest.forest import build_forest

from .test_rcf import reference_score


def previous_score(forest, x) -> np.ndarray:
    """The scores as the previous implementation computed them (`Forest.score` at f60b636)."""
    mass = forest.mass.astype(np.float64)
    range_sum = (forest.bounds[:, 1].astype(np.float64) - forest.bounds[:, 0]).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        seen = np.nan_to_num((1 - mass / (2 * forest.sample_size)) / (forest.depth + np.log2(mass + 1)))
    x = np.ascontiguousarray(x, dtype=np.float32)
    total = previous_kernel(x, forest.bounds, forest.cut_dim, forest.cut_value, forest.children, range_sum, seen,
                            forest.n_trees, forest.stride, max(1, min(16384, len(x))))
    return total * (np.log2(forest.sample_size + 1) / forest.n_trees)


@numba.njit(nogil=True, fastmath=True)
def previous_kernel(x, bounds, cut_dim, cut_value, children, range_sum, seen_term, n_trees, stride,
           block):
    """Σ over trees of each row's score before scaling (see the module docstring).

    Node by node rather than row by row: `block` rows at a time go down each tree together, split
    by every cut the way the tree's points were (columns, running sums and row numbers partitioned
    into the other of two buffers). At each node one loop over its rows (vectorised) adds up how
    far each lies outside the box; the fold of the module docstring is then summed from the root
    down, score += keep · p / (k + 1) and keep *= 1 − p (keep: the chance of no separation above
    depth k). Rows inside a box have p = 0 there, as at all its ancestors, so this is the same sum
    as AWS's fold from the leaf up to the first box that holds the row. A row equal to its leaf's
    point has been inside every box on its path: its score is the leaf's `seen_term` alone.
    """
    n, d = x.shape
    out = np.zeros(n)
    inv = 1.0 / np.arange(1, stride + 2)
    cols = np.empty((2, d, block), np.float32)  # buffer (depth % 2), feature, row
    rows = np.empty((2, block), np.int64)
    total = np.empty((2, block))
    keep = np.empty((2, block))
    dist = np.empty(block)
    stack = np.empty((stride, 4), np.int64)  # (node, start, end, depth) still to visit
    for first in range(0, n, block):
        m = min(block, n - first)
        for t in range(n_trees):
            for j in range(d):
                col = cols[0, j]
                for k in range(m):
                    col[k] = x[first + k, j]
            for k in range(m):
                rows[0, k] = first + k
            total[0, :m] = 0.0
            keep[0, :m] = 1.0
            stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = t * stride, 0, m, 0
            top = 1
            while top:
                top -= 1
                node, a, b, level = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
                src = level & 1
                size = b - a
                here = dist[:size]
                here[:] = 0.0
                for j in range(d):
                    lo, hi = np.float64(bounds[node, 0, j]), np.float64(bounds[node, 1, j])
                    col = cols[src, j, a:b]
                    for k in range(size):
                        v = np.float64(col[k])
                        here[k] += max(lo - v, 0.0) + max(v - hi, 0.0)
                s, kp, ids = total[src, a:b], keep[src, a:b], rows[src, a:b]
                w = inv[level]
                if children[node, 0] < 0:  # the leaf: the row is its point (seen) or is cut off from it
                    seen = seen_term[node]
                    for k in range(size):
                        out[ids[k]] += seen if here[k] == 0 else s[k] + kp[k] * w
                    continue
                # Fold this node in and partition the rows into the other buffer: values <= the cut first.
                r = range_sum[node]
                dim, value, dst = cut_dim[node], cut_value[node], 1 - src
                cut = cols[src, dim, a:b]
                n_left = 0
                for k in range(size):
                    n_left += cut[k] <= value
                to_s, to_kp, to_ids = total[dst, a:b], keep[dst, a:b], rows[dst, a:b]
                to_cols, from_cols = cols[dst, :, a:b], cols[src, :, a:b]
                li, ri = 0, n_left
                for k in range(size):
                    go_left = cut[k] <= value
                    pos = li if go_left else ri
                    li += go_left
                    ri += 1 - go_left
                    p = here[k] / (r + here[k])
                    to_ids[pos], to_s[pos], to_kp[pos] = ids[k], s[k] + kp[k] * p * w, kp[k] * (1.0 - p)
                    for j in range(d):
                        to_cols[j, pos] = from_cols[j, k]
                for side, start, end in ((0, a, a + n_left), (1, a + n_left, b)):
                    if end > start:  # a child no row reaches is not visited
                        stack[top, 0], stack[top, 1], stack[top, 2] = children[node, side], start, end
                        stack[top, 3] = level + 1
                        top += 1
    return out


# Both partition paths; where the CPU lacks AVX-512 the first is the second again.
PATHS = [pytest.param(True, id="vector"), pytest.param(False, id="row-by-row")]


def random_forest(seed: int, trees: int, m: int, d: int, scale: float = 1.0, ties: bool = False):
    """A forest over `trees` samples of m points from three clusters (d features, times `scale`);
    `ties`: the points rounded to a few values (duplicate points, tied cut values)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, d))
    samples = centres[rng.integers(0, 3, (trees, m))] + rng.normal(size=(trees, m, d))
    if ties:
        samples = np.round(samples / 2)
    forest = build_forest((samples * scale).astype(np.float32), rng)
    return forest, samples * scale, rng


def queries(rng, samples, n: int, scale: float = 1.0) -> np.ndarray:
    """n rows: sampled points (seen by their tree), points next to them, rows spread over the
    data's range and far outliers (up to 1e6 x the data's scale away)."""
    points = samples.reshape(-1, samples.shape[-1])
    kinds = rng.integers(0, 4, n)
    q = points[rng.integers(0, len(points), n)]
    q = np.where((kinds == 1)[:, None], q + rng.normal(0, 0.05 * scale, q.shape), q)
    q = np.where((kinds == 2)[:, None], rng.uniform(points.min(0), points.max(0), q.shape), q)
    far = rng.normal(size=q.shape) * 10.0 ** rng.uniform(1, 6, (n, 1)) * scale
    return np.where((kinds == 3)[:, None], far, q).astype(np.float32)


@pytest.mark.parametrize("vector", PATHS)
@pytest.mark.parametrize("seed, trees, m, d, n, ties", [
    (0, 7, 64, 1, 300, False), (1, 5, 256, 5, 1000, False), (2, 3, 33, 3, 17, True), (3, 4, 128, 17, 257, False),
    (4, 2, 2, 2, 16, False), (5, 3, 100, 40, 50, True), (6, 6, 256, 4, 2000, True)])
def test_scores_match_the_previous_kernel(vector, seed, trees, m, d, n, ties):
    forest, samples, rng = random_forest(seed, trees, m, d, ties=ties)
    q = queries(rng, samples, n)
    want = previous_score(forest, q)
    for block in sorted({1, 15, 16, 17, 100, n}):
        np.testing.assert_allclose(forest.score(q, block=block, vector=vector), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("vector", PATHS)
def test_scores_match_the_plain_formula_on_a_random_forest(vector):
    forest, samples, rng = random_forest(7, 4, 48, 3, ties=True)
    q = queries(rng, samples, 60)
    want = [reference_score(forest, row.astype(np.float64)) for row in q]
    np.testing.assert_allclose(forest.score(q, block=13, vector=vector), want, rtol=1e-9)


@pytest.mark.parametrize("vector", PATHS)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_tiny_boxes_and_far_rows_keep_the_scores_finite_and_the_same(vector, scale):
    # A row 1e6 scales away from boxes of range ~1e-30 ... each node multiplies the kernel's
    # running sums by up to ~1e6 x (1 + g); without rescaling they would overflow.
    forest, samples, rng = random_forest(8, 3, 256, 3, scale=scale)
    q = queries(rng, samples, 400, scale=scale)
    got = forest.score(q, vector=vector)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, previous_score(forest, q), rtol=1e-12, atol=0)
    tiny, _, _ = random_forest(9, 2, 64, 2, scale=1e-30)
    outliers = np.full((5, 2), 3e38, np.float32) * np.array([[1, -1], [-1, 1], [1, 1], [0, 1], [-1, 0]], np.float32)
    got = tiny.score(outliers, vector=vector)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, previous_score(tiny, outliers), rtol=1e-12)


@pytest.mark.parametrize("vector", PATHS)
def test_rows_with_nan_do_not_disturb_the_others(vector):
    # A NaN is <= no cut value: such a row goes right at every node, and the rows beside it in
    # the partition buffers keep their places and scores.
    forest, samples, rng = random_forest(10, 5, 128, 4)
    q = queries(rng, samples, 500)
    partly = q[:40].copy()
    partly[:, 2] = np.nan
    mixed = np.insert(np.concatenate([q, partly]), np.arange(0, 540, 7), np.nan, axis=0)
    got = forest.score(mixed, vector=vector)
    finite = np.isfinite(mixed).all(1)
    np.testing.assert_allclose(got[finite], forest.score(q, vector=vector), rtol=1e-12, atol=0)

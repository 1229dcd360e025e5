"""Random cut forests in flat arrays: reservoir sampling (numpy, vectorised over every tree at
once), tree building and scoring (two small compiled kernels, `numba`: a tree is a walk over a
few hundred nodes, which array operations level by level ran 10-30x slower than compiled loops).

Trees (Guha et al., "Robust random cut forest based anomaly detection on streams", ICML 2016):
a node's bounding box is that of its points; its cut picks a dimension with probability
proportional to the box's range in it and a value uniform in that range (points `<=` the value
go left); a node is a leaf when it holds one distinct point (its mass counts duplicates).

Score of a point x in one tree (the expected change in tree complexity were x inserted, as AWS's
open RCF library computes it, `CommonUtils`/`AbstractScalarScoreVisitor`): follow x's path by the
cuts from the root (depth 0) to a leaf. At a node of depth k whose box is B, a random cut of the
box B ∪ {x} separates x with probability p = L1(x, B) / (range sum of B + L1(x, B)), where
L1(x, B) is how far x lies outside B summed over dimensions; that separation would leave x at
depth k + 1, contributing 1 / (k + 1). Going down the path,

    score = Σ_k  P(not separated above k) · p_k / (k + 1)  +  P(reached the leaf) · leaf term

where the leaf term is 1 / (depth + 1) for a point the tree has not seen (p = 1) and
(1 − mass / (2 · tree mass)) / (depth + log2(mass + 1)) for one equal to the leaf's point. The
tree's score is scaled by log2(tree mass + 1); the forest's is the mean over trees. Low is
normal; an isolated point scores several times the typical one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


# Rows that go down a tree together when scoring: large enough that a node's loops run long
# (measured: 4096 rows ran 20% slower than 20000), small enough for the buffers (about 60 bytes a
# row) to stay in the cache.
SCORE_BLOCK = 16384


class Reservoirs:
    """One uniform sample without replacement of at most `size` records per tree, over a stream.

    Each (tree, record) pair gets a random key; a tree keeps the `size` records of smallest keys
    (bottom-k sampling: exactly uniform, independent across trees, one pass, any batch sizes).
    """

    def __init__(self, n_trees: int, size: int, n_features: int, rng: np.random.Generator):
        self.rng = rng
        self.keys = np.full((n_trees, size), np.inf)
        self.points = np.zeros((n_trees, size, n_features), dtype=np.float32)
        self.seen = 0

    def add(self, x: np.ndarray) -> None:
        """Offer the records x (n, d) float32 to every tree's sample."""
        n = x.shape[0]
        if n == 0:
            return
        self.seen += n
        new = self.rng.random((self.keys.shape[0], n))
        entering = new < self.keys.max(1, keepdims=True)
        most = int(entering.sum(1).max())
        if most == 0:
            return
        size = self.keys.shape[1]
        if most < n:  # only the `most` smallest new keys of each tree can enter
            pick = np.argpartition(np.where(entering, new, np.inf), most - 1, axis=1)[:, :most]
        else:
            pick = np.broadcast_to(np.arange(n), new.shape)
        candidates = np.take_along_axis(new, pick, 1)
        merged = np.concatenate([self.keys, candidates], axis=1)
        kept = np.argpartition(merged, size - 1, axis=1)[:, :size]
        # Old records that stay keep their slots; entering ones fill the slots of those that left.
        stays = np.zeros_like(self.keys, dtype=bool)
        rows = np.broadcast_to(np.arange(merged.shape[0])[:, None], kept.shape)
        old = kept < size
        stays[rows[old], kept[old]] = True
        tree_in, col_in = np.nonzero(~old)            # row-major: grouped by tree, as are ...
        tree_out, slot_out = np.nonzero(~stays)       # ... the slots they fill, equally many per tree
        record = pick[tree_in, kept[tree_in, col_in] - size]
        self.keys[tree_out, slot_out] = candidates[tree_in, kept[tree_in, col_in] - size]
        self.points[tree_out, slot_out] = x[record]

    def gathered(self, cluster, seed) -> "Reservoirs":
        """Every host's reservoirs as one, the same on every host: per tree the `size` records of
        smallest keys among all the hosts' (bottom-k samples merge exactly: the result is a uniform
        sample of all the records, as one host's, when each host drew its own keys). Its `rng`,
        which then grows the trees, starts from `seed` on every host. On one host: these
        reservoirs, their rng going on."""
        if not cluster.several:
            return self
        size = self.keys.shape[1]
        keys = np.concatenate(cluster.gather(self.keys), axis=1)  # (trees, hosts * size), in rank order
        points = np.concatenate(cluster.gather(self.points), axis=1)
        kept = np.sort(np.argpartition(keys, size - 1, axis=1)[:, :size], axis=1)
        merged = Reservoirs.__new__(Reservoirs)
        merged.rng = np.random.default_rng(seed)
        merged.keys = np.take_along_axis(keys, kept, 1)
        merged.points = np.take_along_axis(points, kept[:, :, None], 1)
        merged.seen = int(cluster.sum(np.array([self.seen], dtype=np.int64))[0][0])
        return merged

    def samples(self) -> np.ndarray:
        """(trees, m, d): each tree's sample, m = min(records seen, size) (the same for every tree)."""
        m = min(self.seen, self.keys.shape[1])
        filled = np.isfinite(self.keys)
        return self.points[filled].reshape(self.keys.shape[0], m, self.points.shape[2])


@dataclass
class Forest:
    """Random cut trees as flat arrays over all their nodes; tree t owns nodes
    [t * stride, (t + 1) * stride), its root first (stride = 2 * sample_size - 1, the most a tree
    of that many points can need; slots a tree does not use have mass 0).

    bounds (nodes, 2, d) float32: each node's bounding box, lowest then highest values (a leaf's
    is its point); cut_dim (nodes,) int32 and cut_value (nodes,) float32: the cut (leaves: -1, 0);
    children (nodes, 2) int32: left (values <= the cut) and right child (leaves: -1, -1); mass
    (nodes,) int32: points under the node; depth (nodes,) int32. Every tree holds `sample_size`
    points.
    """

    bounds: np.ndarray
    cut_dim: np.ndarray
    cut_value: np.ndarray
    children: np.ndarray
    mass: np.ndarray
    depth: np.ndarray
    n_trees: int
    sample_size: int

    ARRAYS = ("bounds", "cut_dim", "cut_value", "children", "mass", "depth")

    @property
    def stride(self) -> int:
        return 2 * self.sample_size - 1

    @property
    def n_features(self) -> int:
        return int(self.bounds.shape[2])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def empty(cls, n_trees: int, sample_size: int, n_features: int) -> "Forest":
        nodes = n_trees * (2 * sample_size - 1)
        return cls(bounds=np.zeros((nodes, 2, n_features), np.float32), cut_dim=np.full(nodes, -1, np.int32),
                   cut_value=np.zeros(nodes, np.float32), children=np.full((nodes, 2), -1, np.int32),
                   mass=np.zeros(nodes, np.int32), depth=np.zeros(nodes, np.int32),
                   n_trees=n_trees, sample_size=sample_size)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_trees: int, sample_size: int) -> "Forest":
        """A forest from `arrays()`'s output; ValueError naming what is inconsistent."""
        missing = [a for a in cls.ARRAYS if a not in arrays]
        if missing:
            raise ValueError(f"missing tensor(s) {', '.join(missing)}")
        like = cls.empty(n_trees, sample_size, int(np.shape(arrays["bounds"])[-1]))
        got = {}
        for name, template in like.arrays().items():
            value = np.asarray(arrays[name])
            if value.shape != template.shape:
                raise ValueError(f"tensor {name} has shape {value.shape}; num_trees={n_trees} trees of sample_size="
                                 f"{sample_size} need {template.shape}")
            got[name] = np.ascontiguousarray(value, dtype=template.dtype)
        forest = cls(**got, n_trees=int(n_trees), sample_size=int(sample_size))
        ids = np.arange(forest.mass.shape[0])
        inner = forest.children[:, 0] >= 0
        kids = forest.children[inner]
        tree = (ids // forest.stride)[inner, None]
        if ((kids // forest.stride != tree).any() or (kids <= ids[inner, None]).any()
                or (forest.cut_dim[inner] < 0).any() or (forest.cut_dim[inner] >= forest.n_features).any()
                or (forest.mass[::forest.stride] != sample_size).any()):
            raise ValueError("the trees' structure is inconsistent (children, cut dimensions or masses)")
        return forest

    def score(self, x: np.ndarray, block: int = SCORE_BLOCK) -> np.ndarray:
        """The forest's anomaly score of each row of x (n, d) float32: (n,) float64, `block` rows
        at a time (the scores do not depend on it)."""
        if getattr(self, "_terms", None) is None:
            mass = self.mass.astype(np.float64)
            range_sum = (self.bounds[:, 1].astype(np.float64) - self.bounds[:, 0]).sum(1)
            with np.errstate(divide="ignore", invalid="ignore"):  # unused slots (mass 0)
                seen = (1 - mass / (2 * self.sample_size)) / (self.depth + np.log2(mass + 1))
            self._terms = (np.ascontiguousarray(range_sum), np.ascontiguousarray(np.nan_to_num(seen)))
        total = _score(np.ascontiguousarray(x, dtype=np.float32), self.bounds, self.cut_dim, self.cut_value,
                       self.children, *self._terms, self.n_trees, self.stride, max(1, min(block, len(x))))
        return total * (np.log2(self.sample_size + 1) / self.n_trees)


def build_forest(samples: np.ndarray, rng: np.random.Generator) -> Forest:
    """Random cut trees over samples (trees, m, d) float32 (one tree per sample)."""
    n_trees, m, d = samples.shape
    forest = Forest.empty(n_trees, m, d)
    uniforms = rng.random((n_trees, max(1, m - 1)))  # one per cut: the seed alone fixes every tree
    _grow(np.ascontiguousarray(samples, dtype=np.float32), uniforms, *forest.arrays().values())
    return forest


# Eager signatures: compiled (or read from numba's cache) when this module is imported, so that
# an image's build step leaves the compiled kernels in the image and no request waits for them.
@numba.njit("void(float32[:, :, ::1], float64[:, ::1], float32[:, :, ::1], int32[::1], float32[::1], "
            "int32[:, ::1], int32[::1], int32[::1])", cache=True, nogil=True)
def _grow(samples, uniforms, bounds, cut_dim, cut_value, children, mass, depth):  # pragma: no cover
    """Grow every tree of `samples` into the node arrays (see `Forest`), each from its root down.

    A node's points are idx[start:end] of its tree; its cut takes the next of the tree's uniforms
    u: the position u x (range sum) along the box's ranges laid end to end picks the dimension
    (probability proportional to its range) and the value (uniform within it, clipped inside
    [lo, hi) so that both children get a point). Points <= the value go left.
    """
    n_trees, m, d = samples.shape
    stride = 2 * m - 1
    for t in range(n_trees):
        pts = samples[t]
        idx = np.arange(m)
        root = t * stride
        stack = np.empty((stride, 3), np.int64)  # (node, start, end) still to split
        stack[0, 0], stack[0, 1], stack[0, 2] = root, 0, m
        top, next_node, next_cut = 1, root + 1, 0
        mass[root] = m
        while top:
            top -= 1
            node, start, end = stack[top, 0], stack[top, 1], stack[top, 2]
            lo, hi = bounds[node, 0], bounds[node, 1]
            lo[:] = pts[idx[start]]
            hi[:] = pts[idx[start]]
            for k in range(start + 1, end):
                row = pts[idx[k]]
                for j in range(d):
                    if row[j] < lo[j]:
                        lo[j] = row[j]
                    elif row[j] > hi[j]:
                        hi[j] = row[j]
            total = 0.0
            for j in range(d):
                total += np.float64(hi[j]) - np.float64(lo[j])
            if total <= 0:  # one point, or copies of one point: a leaf of that mass
                continue
            u = min(uniforms[t, next_cut] * total, np.nextafter(total, 0.0))
            next_cut += 1
            dim, before = 0, 0.0
            for j in range(d):  # the same partial sums as `total`: some width > 0 ends past u
                width = np.float64(hi[j]) - np.float64(lo[j])
                if width > 0 and before + width > u:
                    dim = j
                    break
                before += width
            value = np.float32(np.float64(lo[dim]) + (u - before))
            value = max(lo[dim], min(value, np.nextafter(hi[dim], np.float32(-np.inf))))
            # Partition idx[start:end]: points <= value first, order kept (a seed repeats a tree).
            buf = idx[start:end].copy()
            i, n_right = start, 0
            for k in range(end - start):
                if pts[buf[k], dim] <= value:
                    idx[i] = buf[k]
                    i += 1
                else:
                    buf[n_right] = buf[k]
                    n_right += 1
            idx[i:end] = buf[:n_right]
            cut_dim[node], cut_value[node] = dim, value
            children[node, 0], children[node, 1] = next_node, next_node + 1
            for side in range(2):
                child = next_node + side
                a, b = (start, i) if side == 0 else (i, end)
                mass[child], depth[child] = b - a, depth[node] + 1
                stack[top, 0], stack[top, 1], stack[top, 2] = child, a, b
                top += 1
            next_node += 2


@numba.njit("float64[::1](float32[:, ::1], float32[:, :, ::1], int32[::1], float32[::1], int32[:, ::1], "
            "float64[::1], float64[::1], int64, int64, int64)", cache=True, nogil=True, fastmath=True)
def _score(x, bounds, cut_dim, cut_value, children, range_sum, seen_term, n_trees, stride,
           block):  # pragma: no cover
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

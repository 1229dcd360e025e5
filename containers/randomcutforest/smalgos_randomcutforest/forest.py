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

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


# Rows that go down a tree together when scoring: the more, the fewer times each node's loops
# start (a tree's ~500 nodes are visited once per block); about 12 d + 52 bytes a row of buffers.
# Measured at d = 5: 20,000 rows at once ran 1.3-1.5x faster than 4,096.
SCORE_BLOCK = 32768
LANES = 16  # rows one 64-byte vector holds (float32 features, int32 row numbers)


def _has_vector_compress() -> bool:
    """Whether the scoring kernel partitions rows with AVX-512 compresses (LLVM's
    `llvm.experimental.vector.compress`, LLVM 19 and later) rather than row by row: on x86-64
    CPUs with AVX-512F, for the CPU numba compiles for (`NUMBA_CPU_FEATURES`, else the host's)."""
    if llvm.llvm_version_info < (19,):
        return False
    features = numba.config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


VECTOR_COMPRESS = _has_vector_compress()


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

    def score(self, x: np.ndarray, block: int = SCORE_BLOCK, vector: bool = VECTOR_COMPRESS) -> np.ndarray:
        """The forest's anomaly score of each row of x (n, d) float32: (n,) float64, `block` rows
        at a time; `vector`: rows partitioned by AVX-512 compresses (the default where the CPU has
        them) or row by row. The scores depend on neither."""
        if getattr(self, "_terms", None) is None:
            mass = self.mass.astype(np.float64)
            range_sum = (self.bounds[:, 1].astype(np.float64) - self.bounds[:, 0]).sum(1)
            with np.errstate(divide="ignore", invalid="ignore"):  # leaves and unused slots
                seen = (1 - mass / (2 * self.sample_size)) / (self.depth + np.log2(mass + 1))
                inv_range = np.where(range_sum > 0, 1 / range_sum, 0.0)
            self._terms = (np.ascontiguousarray(inv_range), np.ascontiguousarray(np.nan_to_num(seen)))
        total = _score(np.ascontiguousarray(x, dtype=np.float32), self.bounds, self.cut_dim, self.cut_value,
                       self.children, *self._terms, self.n_trees, self.stride, max(1, min(block, len(x))),
                       bool(vector and VECTOR_COMPRESS))
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


def _vector_of(context, aryty):
    """The integer vector type of 64 bytes of the array's elements (16 x i32 or 8 x i64)."""
    size = context.get_abi_sizeof(context.get_data_type(aryty.dtype))
    return ir.VectorType(ir.IntType(8 * size), 64 // size)


def _element(context, builder, aryty, ary, index):
    """Pointer to element `index` of a C-contiguous 1-D array."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.gep(data, [context.cast(builder, index, types.intp, types.int64)])


@intrinsic
def _le_mask(typingctx, key, k, value):
    """Bit l set where key[k + l] <= value, l < 16 (key: float32, C-contiguous, 16 elements
    readable from k). An IEEE comparison whatever the caller's fastmath: a NaN is not <= value."""
    sig = types.int64(key, types.intp, types.float32)

    def codegen(context, builder, sig, args):
        vec = ir.VectorType(ir.FloatType(), LANES)
        lanes = builder.load(builder.bitcast(_element(context, builder, sig.args[0], args[0], args[1]),
                                             vec.as_pointer()), align=4)
        splat = ir.Constant(vec, None)
        for lane in range(LANES):
            splat = builder.insert_element(splat, args[2], ir.Constant(ir.IntType(32), lane))
        bits = builder.bitcast(builder.fcmp_ordered("<=", lanes, splat), ir.IntType(LANES))
        return builder.zext(bits, ir.IntType(64))
    return sig, codegen


@intrinsic
def _popcount(typingctx, bits):
    """The number of bits set in an int64."""
    sig = types.int64(types.int64)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64]), "llvm.ctpop.i64")
        return builder.call(ctpop, [args[0]])
    return sig, codegen


@intrinsic
def _split(typingctx, src, k, dst, left, right, lbits, rbits):
    """The 64 bytes of src from element k (16 int32/float32 or 8 float64 lanes): the lanes whose
    bit is set in lbits stored in order from dst[left], those set in rbits in order from
    dst[right], nothing else of dst written (a compress, then a store masked to the lanes kept:
    AVX-512's register compresses are fast where its compressing stores are not). Both arrays
    C-contiguous with 64 bytes readable from k. Compiled to nothing where VECTOR_COMPRESS is
    False (the kernel then never calls it)."""
    sig = types.void(src, types.intp, dst, types.intp, types.intp, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        if not VECTOR_COMPRESS:
            return context.get_dummy_value()
        vec = _vector_of(context, sig.args[0])
        n, width = vec.count, vec.element.width
        mask = ir.VectorType(ir.IntType(1), n)
        bits_t, wide = ir.IntType(n), ir.IntType(2 * n)
        module = builder.module
        compress = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec, mask, vec]),
                                                  f"llvm.experimental.vector.compress.v{n}i{width}")
        store = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), ir.IntType(32), mask]),
            f"llvm.masked.store.v{n}i{width}.p0")
        ctpop = cgutils.get_or_insert_function(module, ir.FunctionType(bits_t, [bits_t]), f"llvm.ctpop.i{n}")
        lanes = builder.load(builder.bitcast(_element(context, builder, sig.args[0], args[0], args[1]),
                                             vec.as_pointer()), align=4)
        for bits, at in ((args[5], args[3]), (args[6], args[4])):
            chosen = builder.trunc(bits, bits_t)
            packed = builder.call(compress, [lanes, builder.bitcast(chosen, mask), ir.Constant(vec, None)])
            count = builder.zext(builder.call(ctpop, [chosen]), wide)  # the first `count` lanes are kept
            first = builder.trunc(builder.sub(builder.shl(ir.Constant(wide, 1), count), ir.Constant(wide, 1)), bits_t)
            target = builder.bitcast(_element(context, builder, sig.args[2], args[2], at), vec.as_pointer())
            builder.call(store, [packed, target, ir.Constant(ir.IntType(32), 4), builder.bitcast(first, mask)])
        return context.get_dummy_value()
    return sig, codegen


@numba.njit("float64[::1](float32[:, ::1], float32[:, :, ::1], int32[::1], float32[::1], int32[:, ::1], "
            "float64[::1], float64[::1], int64, int64, int64, boolean)", cache=True, nogil=True, fastmath=True)
def _score(x, bounds, cut_dim, cut_value, children, inv_range, seen_term, n_trees, stride, block,
           vector):  # pragma: no cover
    """Σ over trees of each row's score before scaling (see the module docstring).

    Tree by tree, node by node: `block` rows at a time go down each tree together, split by every
    cut the way the tree's points were. A node's rows sit in one range of column buffers (its
    features, float32), row numbers and running state; at each node one vectorised loop per
    feature adds up how far each row lies outside the box, the last one also folding the node in,
    then the rows are partitioned into the other of two buffers, those <= the cut first (by
    16-row AVX-512 compresses where `vector`, else row by row). The block as read stays in a
    third buffer, the root's.

    The fold carries, per row, the chance of no separation above depth k as 1 / D and the score
    so far as A / D: with g = L1(x, B) / (range sum of B), p = g / (1 + g) and 1 - p = 1 / (1 + g),
    so score += keep · p / (k + 1), keep *= 1 - p become A ← A (1 + g) + g / (k + 1), D ← D (1 + g)
    (no division until the leaf; A and D scaled down together by 2^-500 past 2^500, which
    leaves A / D as it is). Rows inside a box have g = 0 there, as at all its ancestors, so this
    is the same sum as AWS's fold from the leaf up to the first box that holds the row. A row
    equal to its leaf's point has been inside every box on its path: its score is the leaf's
    `seen_term` alone.
    """
    n, d = x.shape
    out = np.zeros(n)
    inv = 1.0 / np.arange(1, stride + 2)
    width = block + LANES  # a vector read from any row of a block stays inside the buffers
    cols = np.zeros((3, d, width), np.float32)  # features: [2] the block as read, [1] and [0] by level
    rows = np.zeros((3, width), np.int32)  # row numbers, likewise
    total = np.zeros((2, width))  # A, then D: a level's rows in [level % 2]
    keep = np.ones((2, width))
    dist = np.zeros(width)
    goes_left = np.zeros(width, np.bool_)
    stack = np.empty((stride, 4), np.int64)  # (node, start, end, depth) still to visit
    big, shrink = 2.0 ** 500, 2.0 ** -500
    for first in range(0, n, block):
        m = min(block, n - first)
        for j in range(d):
            col = cols[2, j]
            for k in range(m):
                col[k] = x[first + k, j]
        for k in range(m):
            rows[2, k] = first + k
        for t in range(n_trees):
            stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = t * stride, 0, m, 0
            top = 1
            while top:
                top -= 1
                node, a, b, level = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
                src = 2 if level == 0 else level & 1  # this node's rows and features
                state, dst = level & 1, 1 - (level & 1)  # this node's A and D; its children's buffers
                size = b - a
                s, kp, ids = total[state, a:b], keep[state, a:b], rows[src, a:b]
                if level == 0:
                    s[:] = 0.0
                    kp[:] = 1.0
                here = dist[a:b]
                here[:] = 0.0
                for j in range(d - 1):
                    lo, hi = np.float64(bounds[node, 0, j]), np.float64(bounds[node, 1, j])
                    col = cols[src, j, a:b]
                    for k in range(size):
                        v = np.float64(col[k])
                        here[k] += max(lo - v, 0.0) + max(v - hi, 0.0)
                lo, hi = np.float64(bounds[node, 0, d - 1]), np.float64(bounds[node, 1, d - 1])
                col = cols[src, d - 1, a:b]
                w = inv[level]
                if children[node, 0] < 0:  # the leaf: the row is its point (seen) or is cut off from it
                    seen = seen_term[node]
                    for k in range(size):
                        v = np.float64(col[k])
                        outside = here[k] + max(lo - v, 0.0) + max(v - hi, 0.0)
                        out[ids[k]] += seen if outside == 0 else (s[k] + w) / kp[k]
                    continue
                r = inv_range[node]
                for k in range(size):
                    v = np.float64(col[k])
                    g = (here[k] + max(lo - v, 0.0) + max(v - hi, 0.0)) * r
                    grown_s, grown_kp = s[k] * (1.0 + g) + g * w, kp[k] * (1.0 + g)
                    scale = shrink if grown_kp > big else 1.0
                    s[k], kp[k] = grown_s * scale, grown_kp * scale
                # Partition into the children's buffers: rows <= the cut first, order kept.
                dim, value = cut_dim[node], cut_value[node]
                cut = cols[src, dim]
                n_left = 0
                if vector:
                    for c in range(a, b, LANES):
                        n_left += _popcount(_le_mask(cut, c, value) & ((1 << min(LANES, b - c)) - 1))
                    li, ri = a, a + n_left
                    from_s, from_kp, to_s, to_kp = total[state], keep[state], total[dst], keep[dst]
                    for c in range(a, b, LANES):
                        lanes = (1 << min(LANES, b - c)) - 1
                        lb = _le_mask(cut, c, value) & lanes
                        rb = ~lb & lanes
                        for j in range(d):
                            _split(cols[src, j], c, cols[dst, j], li, ri, lb, rb)
                        _split(rows[src], c, rows[dst], li, ri, lb, rb)
                        lb0, rb0 = lb & 255, rb & 255  # float64: 8 lanes a vector
                        l0, r0 = li + _popcount(lb0), ri + _popcount(rb0)
                        _split(from_s, c, to_s, li, ri, lb0, rb0)
                        _split(from_kp, c, to_kp, li, ri, lb0, rb0)
                        _split(from_s, c + 8, to_s, l0, r0, lb >> 8, rb >> 8)
                        _split(from_kp, c + 8, to_kp, l0, r0, lb >> 8, rb >> 8)
                        li += _popcount(lb)
                        ri += _popcount(rb)
                else:
                    for k in range(a, b):
                        go = cut[k] <= value
                        goes_left[k] = go
                        n_left += go
                    to_s, to_kp, to_ids = total[dst, a:b], keep[dst, a:b], rows[dst, a:b]
                    to_cols, from_cols, went = cols[dst, :, a:b], cols[src, :, a:b], goes_left[a:b]
                    li, ri = 0, n_left
                    for k in range(size):
                        go = went[k]
                        pos = li if go else ri
                        li += go
                        ri += 1 - go
                        to_ids[pos], to_s[pos], to_kp[pos] = ids[k], s[k], kp[k]
                        for j in range(d):
                            to_cols[j, pos] = from_cols[j, k]
                for side, start, end in ((0, a, a + n_left), (1, a + n_left, b)):
                    if end > start:  # a child no row reaches is not visited
                        stack[top, 0], stack[top, 1], stack[top, 2] = children[node, side], start, end
                        stack[top, 3] = level + 1
                        top += 1
    return out

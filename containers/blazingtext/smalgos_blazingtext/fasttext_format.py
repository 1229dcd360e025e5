"""fastText's binary model format (`model.bin`, version 12), read and written here from its public
description (fastText's fasttext.cc `saveModel`/`loadModel`, args.cc, dictionary.cc, densematrix.cc),
without fastText or any unpickling; and fastText's way of turning a line of text into input rows.

Layout, little-endian:
    int32 magic 793712314, int32 version 12
    args: int32 dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
          lrUpdateRate; float64 t
    dictionary: int32 size, nwords, nlabels; int64 ntokens, pruneidx_size (-1: not pruned);
          per entry: the word's bytes, a NUL, int64 count, int8 type (0 word, 1 label);
          pruneidx_size pairs of int32
    bool quant_input; input matrix: int64 rows, cols, float32 rows x cols (nwords + bucket rows)
    bool qout; output matrix: int64 rows, cols, float32 (nlabels rows for supervised models)

A line's input rows (`FastTextModel.line_ids`, dictionary.cc `getLine`): each word's row, or for a
word outside the vocabulary nothing (when the model has character n-grams, its n-grams' rows);
with character n-grams (maxn > 0) each word's n-gram rows too; the end-of-line token `</s>`
(every line ends with it); then the hashed word n-grams up to `wordNgrams` words, over every word
token of the line (known or not), at rows nwords + (hash % bucket). Label tokens start with
`__label__` and are not inputs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

MAGIC, VERSION = 793712314, 12
EOS = "</s>"
LABEL_PREFIX = "__label__"
WORD, LABEL = 0, 1
LOSS_HS, LOSS_NS, LOSS_SOFTMAX, LOSS_OVA = 1, 2, 3, 4
MODEL_CBOW, MODEL_SG, MODEL_SUP = 1, 2, 3
ARG_NAMES = ("dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket", "minn", "maxn",
             "lr_update_rate")
NGRAM_PRIME = 116049371  # dictionary.cc addWordNgrams
_MASK64 = (1 << 64) - 1


class FormatError(ValueError):
    """A file that is not a model in fastText's binary format, or one this reader does not take."""


@dataclass
class Args:
    dim: int = 100
    ws: int = 5
    epoch: int = 5
    min_count: int = 1
    neg: int = 5
    word_ngrams: int = 1
    loss: int = LOSS_SOFTMAX
    model: int = MODEL_SUP
    bucket: int = 2000000
    minn: int = 0
    maxn: int = 0
    lr_update_rate: int = 100
    t: float = 1e-4


@dataclass
class FastTextModel:
    """A fastText model in memory: its args, dictionary (words then labels, with counts) and the
    input (nwords + bucket rows) and output matrices, float32."""

    args: Args
    words: list[str]
    word_counts: np.ndarray
    labels: list[str]
    label_counts: np.ndarray
    input: np.ndarray
    output: np.ndarray
    ntokens: int = 0
    _word_index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._word_index = {w: i for i, w in enumerate(self.words)}
        self._subword_cache: dict[str, list[int]] = {}
        self._token_cache: dict[str, tuple[int, int]] = {}

    @property
    def nwords(self) -> int:
        return len(self.words)

    @property
    def is_supervised(self) -> bool:
        return self.args.model == MODEL_SUP

    # -- text to rows ---------------------------------------------------------------------------

    def subword_rows(self, word: str) -> list[int]:
        """Rows of the character n-grams of `<word>` (minn..maxn characters), fastText's order."""
        if self.args.maxn <= 0 or self.args.bucket <= 0:
            return []
        rows = self._subword_cache.get(word)
        if rows is None:
            rows = [self.nwords + h for h in char_ngram_hashes("<" + word + ">", self.args.minn, self.args.maxn,
                                                               self.args.bucket)]
            if len(self._subword_cache) < 1_000_000:
                self._subword_cache[word] = rows
        return rows

    def line_ids(self, tokens: Sequence[str]) -> tuple[list[int], list[str]]:
        """A line's input rows and its label tokens (the line's end `</s>` is added here)."""
        rows: list[int] = []
        hashes: list[int] = []
        labels: list[str] = []
        for token in [*tokens, EOS]:
            if token.startswith(LABEL_PREFIX):
                labels.append(token)
                continue
            wid = self._word_index.get(token)
            if wid is not None:
                rows.append(wid)
            if token != EOS:
                rows.extend(self.subword_rows(token))
            hashes.append(fnv1a(token))
        if self.args.word_ngrams > 1 and self.args.bucket > 0:
            rows.extend(self.nwords + h for h in word_ngram_hashes(hashes, self.args.word_ngrams, self.args.bucket))
        return rows, labels

    def encode(self, lines: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """`line_ids` of many lines at once, for `torch.nn.EmbeddingBag` or a mean over rows: the
        rows of every line one after the other (int64), where each line starts (offsets), and each
        line's labels. The order of a line's rows may differ from `line_ids`' (a mean ignores it)."""
        if self.args.maxn > 0:  # character n-grams: line by line
            encoded = [self.line_ids(tokens) for tokens in lines]
            sizes = np.array([len(r) for r, _ in encoded], dtype=np.int64)
            rows = np.fromiter((i for r, _ in encoded for i in r), dtype=np.int64, count=int(sizes.sum()))
            return rows, _offsets(sizes), [labels for _, labels in encoded]
        index, cache = self._word_index, self._token_cache
        wids: list[int] = []
        hashes: list[int] = []
        counts: list[int] = []
        labels: list[list[str]] = []
        for tokens in lines:
            own: list[str] = []
            n = 0
            for token in [*tokens, EOS]:
                entry = cache.get(token)
                if entry is None:
                    if token.startswith(LABEL_PREFIX):
                        entry = None
                    else:
                        h = fnv1a(token)
                        entry = (index.get(token, -1), h - (1 << 32) if h >= (1 << 31) else h)
                        cache[token] = entry
                if entry is None:
                    own.append(token)
                    continue
                wids.append(entry[0])
                hashes.append(entry[1])
                n += 1
            counts.append(n)
            labels.append(own)
        line = np.repeat(np.arange(len(lines), dtype=np.int64), counts)
        wid = np.array(wids, dtype=np.int64)
        known = wid >= 0
        row_parts, line_parts = [wid[known]], [line[known]]
        if self.args.word_ngrams > 1 and self.args.bucket > 0 and len(wid):
            h0 = np.array(hashes, dtype=np.int64).view(np.uint64)
            h = h0.copy()
            prime, bucket = np.uint64(NGRAM_PRIME), np.uint64(self.args.bucket)
            for k in range(1, self.args.word_ngrams):
                if len(h) <= 1:
                    break
                h = h[:-1] * prime + h0[k:]  # uint64 arithmetic wraps, as C++'s does
                same = line[:-k] == line[k:]
                row_parts.append(self.nwords + (h[same] % bucket).astype(np.int64))
                line_parts.append(line[:-k][same])
        rows, where = np.concatenate(row_parts), np.concatenate(line_parts)
        order = np.argsort(where, kind="stable")
        sizes = np.bincount(where, minlength=len(lines)).astype(np.int64)
        return rows[order], _offsets(sizes), labels

    # -- (de)serialisation ----------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:
            write(self, f)

    @classmethod
    def load(cls, path: str | Path) -> "FastTextModel":
        with open(path, "rb") as f:
            return read(f, str(path))


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(sizes) else np.zeros(0, np.int64)


def fnv1a(token: str) -> int:
    """dictionary.cc `hash`: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended first."""
    h = 2166136261
    for b in token.encode("utf-8"):
        h = ((h ^ (b - 256 if b >= 128 else b)) * 16777619) & 0xFFFFFFFF
    return h


def word_ngram_hashes(hashes: Sequence[int], n: int, bucket: int) -> list[int]:
    """dictionary.cc `addWordNgrams`: the words' 32-bit hashes, read as int32 and widened to
    uint64, chained as h = h * 116049371 + next over 2..n words; each n-gram at h % bucket."""
    signed = [h - (1 << 32) if h >= (1 << 31) else h for h in hashes]
    out = []
    for i in range(len(signed)):
        h = signed[i] & _MASK64
        for j in range(i + 1, min(len(signed), i + n)):
            h = (h * NGRAM_PRIME + (signed[j] & _MASK64)) & _MASK64
            out.append(h % bucket)
    return out


def char_ngram_hashes(word: str, minn: int, maxn: int, bucket: int) -> list[int]:
    """dictionary.cc `computeSubwords` over `word` (already `<...>`): n-grams of minn..maxn UTF-8
    characters, except the lone `<` and `>`; each at fnv1a(n-gram) % bucket."""
    data = word.encode("utf-8")
    out = []
    size = len(data)
    for i in range(size):
        if data[i] & 0xC0 == 0x80:
            continue
        j, n = i, 1
        while j < size and n <= maxn:
            j += 1
            while j < size and data[j] & 0xC0 == 0x80:
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == size)):
                out.append(_fnv1a_bytes(data[i:j]) % bucket)
            n += 1
    return out


def _fnv1a_bytes(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ (b - 256 if b >= 128 else b)) * 16777619) & 0xFFFFFFFF
    return h


# -- the binary layout --------------------------------------------------------------------------

def write(model: FastTextModel, f: BinaryIO) -> None:
    a = model.args
    f.write(struct.pack("<ii", MAGIC, VERSION))
    f.write(struct.pack("<12i", *(getattr(a, n) for n in ARG_NAMES)))
    f.write(struct.pack("<d", a.t))
    entries = [(w, int(c), WORD) for w, c in zip(model.words, model.word_counts)]
    entries += [(w, int(c), LABEL) for w, c in zip(model.labels, model.label_counts)]
    f.write(struct.pack("<iiiqq", len(entries), len(model.words), len(model.labels), int(model.ntokens), -1))
    for word, count, kind in entries:
        f.write(word.encode("utf-8") + b"\0" + struct.pack("<qb", count, kind))
    for matrix in (model.input, model.output):
        matrix = np.ascontiguousarray(matrix, dtype="<f4")
        f.write(struct.pack("<?qq", False, matrix.shape[0], matrix.shape[1]))
        f.write(matrix.tobytes())


def _read(f: BinaryIO, size: int, where: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise FormatError(f"{where}: the file ends early (a fastText model cut short)")
    return data


def read(f: BinaryIO, where: str = "model") -> FastTextModel:
    magic, version = struct.unpack("<ii", _read(f, 8, where))
    if magic != MAGIC:
        raise FormatError(f"{where}: not a fastText model (magic number {magic}, expected {MAGIC})")
    if version > VERSION:
        raise FormatError(f"{where}: fastText format version {version} is newer than {VERSION}, the one read here")
    args = Args(*struct.unpack("<12i", _read(f, 48, where)), *struct.unpack("<d", _read(f, 8, where)))
    if version == 11 and args.model == MODEL_SUP:
        args.maxn = 0  # fastText.cc: version 11 supervised models had no character n-grams in use
    size, nwords, nlabels, ntokens, prune = struct.unpack("<iiiqq", _read(f, 28, where))
    if not (0 <= nwords <= size and nwords + nlabels == size):
        raise FormatError(f"{where}: dictionary sizes do not add up ({nwords} words + {nlabels} labels != {size})")
    words, counts, kinds = [], [], []
    for _ in range(size):
        raw = bytearray()
        while (byte := f.read(1)) != b"\0":
            if not byte:
                raise FormatError(f"{where}: the file ends inside the dictionary")
            raw += byte
        count, kind = struct.unpack("<qb", _read(f, 9, where))
        words.append(raw.decode("utf-8", errors="replace"))
        counts.append(count)
        kinds.append(kind)
    if any(k != WORD for k in kinds[:nwords]) or any(k != LABEL for k in kinds[nwords:]):
        raise FormatError(f"{where}: the dictionary does not list its {nwords} words before its {nlabels} labels")
    if prune > 0:
        raise FormatError(f"{where}: a pruned (quantized, .ftz) fastText model; only full models are read")
    matrices = []
    for name in ("input", "output"):
        quantized, rows, cols = struct.unpack("<?qq", _read(f, 17, where))
        if quantized:
            raise FormatError(f"{where}: the {name} matrix is quantized (a .ftz model); only full models are read")
        if rows < 0 or cols != args.dim:
            raise FormatError(f"{where}: the {name} matrix is {rows} x {cols}, not ... x dim {args.dim}")
        matrices.append(np.frombuffer(_read(f, 4 * rows * cols, where), dtype="<f4").reshape(rows, cols)
                        .astype(np.float32))
    if matrices[0].shape[0] != nwords + args.bucket:
        raise FormatError(f"{where}: the input matrix has {matrices[0].shape[0]} rows, not nwords + bucket = "
                          f"{nwords + args.bucket}")
    return FastTextModel(args, words[:nwords], np.array(counts[:nwords], np.int64), words[nwords:],
                         np.array(counts[nwords:], np.int64), matrices[0], matrices[1], ntokens)

"""Generated translation-like tasks for Seq2Seq's tests and bench: sentence pairs, vocabularies as
AWS's create_vocab_proto.py builds them, and `.rec` files as it writes them (the SDK's Record
class and recordIO framing)."""

from __future__ import annotations

import io
import json

import numpy as np

from smalgos_seq2seq.vocab import Vocabulary

WORDS = [f"w{i}" for i in range(20)]
UNITS = "zero one two three four five six seven eight nine".split()


def reversal(n: int, seed: int, low: int = 3, high: int = 8, words=WORDS) -> tuple[list[str], list[str]]:
    """Sources of `low`..`high` random words; targets the same words reversed."""
    rng = np.random.default_rng(seed)
    src = [" ".join(rng.choice(words, int(rng.integers(low, high + 1)))) for _ in range(n)]
    return src, [" ".join(reversed(s.split())) for s in src]


def number_words(n: int, seed: int, digits: int = 4) -> tuple[list[str], list[str]]:
    """Sources: numbers as digit tokens ("4 0 7"); targets: the number in English words
    ("four hundred seven"), below 10^digits."""
    rng = np.random.default_rng(seed)
    teens = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
    tens = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

    def below_1000(x):
        out = []
        if x >= 100:
            out += [UNITS[x // 100], "hundred"]
            x %= 100
        if x >= 20:
            out.append(tens[x // 10])
            if x % 10:
                out.append(UNITS[x % 10])
        elif x >= 10:
            out.append(teens[x - 10])
        elif x or not out:
            out.append(UNITS[x])
        return out

    src, trg = [], []
    for x in rng.integers(1, 10 ** digits, n):
        x = int(x)
        words = (below_1000(x // 1000) + ["thousand"] if x >= 1000 else []) + (below_1000(x % 1000) if x % 1000 or x < 1000 else [])
        src.append(" ".join(str(x)))
        trg.append(" ".join(words))
    return src, trg


def vocab_json(v: Vocabulary) -> bytes:
    return json.dumps(v.token_ids).encode()


def sdk_records(sources: list[str], targets: list[str], sv: Vocabulary, tv: Vocabulary) -> bytes:
    """A `.rec` file as create_vocab_proto.py writes it, with the SageMaker SDK's Record and framing."""
    from sagemaker.amazon.common import _write_recordio
    from sagemaker.amazon.record_pb2 import Record

    buf = io.BytesIO()
    for s, t in zip(sources, targets):
        record = Record()
        record.features["source"].int32_tensor.values.extend(sv.ids(s))
        record.features["target"].int32_tensor.values.extend(tv.ids(t))
        _write_recordio(buf, record.SerializeToString())
    return buf.getvalue()

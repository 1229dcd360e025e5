"""Vocabularies as AWS's `create_vocab_proto.py` writes them: JSON `{token: id}` with the reserved
ids `<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3, then the words (ids 4, 5, ... without gaps).

    v = Vocabulary.from_json(path, "vocab.src.json")
    v.ids("you are so good !")   # whitespace tokens; a token not in it is <unk>
    v.text([17, 4, 9])           # ids back to a string (reserved ids are not printed)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

from smalgos.errors import ClientError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
RESERVED = {"<pad>": PAD, "<unk>": UNK, "<s>": BOS, "</s>": EOS}


class Vocabulary:
    def __init__(self, token_ids: dict[str, int], name: str = "vocabulary"):
        self.name = name
        check_vocabulary(token_ids, name)
        self.token_ids = dict(token_ids)
        self.tokens = [""] * len(token_ids)
        for token, i in token_ids.items():
            self.tokens[i] = token

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_json(cls, path: Path, name: str | None = None) -> "Vocabulary":
        path = Path(path)
        name = name or path.name
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ClientError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except ValueError as exc:
            raise ClientError(f"{name}: not valid JSON: {exc}") from None
        return cls(mapping, name)

    @classmethod
    def build(cls, sentences: Iterable[str], name: str = "vocabulary") -> "Vocabulary":
        """RESERVED, then the whitespace tokens of `sentences` by descending count (ties: first seen),
        as create_vocab_proto.py builds one."""
        counts = Counter(t for s in sentences for t in s.split())
        words = [w for w, _ in counts.most_common() if w not in RESERVED]
        return cls({**RESERVED, **{w: 4 + i for i, w in enumerate(words)}}, name)

    def ids(self, sentence: str) -> list[int]:
        return [self.token_ids.get(t, UNK) for t in sentence.split()]

    def text(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i > EOS or i == UNK)


def check_vocabulary(mapping, name: str) -> None:
    """ClientError naming the file and the entry unless `mapping` is {token: id} with the reserved
    ids and ids 0 .. n-1 each used once."""
    if not isinstance(mapping, dict):
        raise ClientError(f"{name}: expected a JSON object {{token: id}}, found {type(mapping).__name__}")
    for token, i in RESERVED.items():
        if mapping.get(token) != i:
            raise ClientError(f"{name}: the reserved token {token!r} must have id {i} (found "
                              f"{mapping.get(token)!r}); reserved: <pad>=0, <unk>=1, <s>=2, </s>=3")
    seen: dict[int, str] = {}
    for token, i in mapping.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ClientError(f"{name}: token {token!r} has id {i!r}: ids are integers >= 0")
        if i in seen:
            raise ClientError(f"{name}: tokens {seen[i]!r} and {token!r} share id {i}")
        seen[i] = token
    if max(seen) != len(seen) - 1:
        missing = next(i for i in range(len(seen)) if i not in seen)
        raise ClientError(f"{name}: ids must run from 0 to {len(seen) - 1} without gaps; {missing} is unused")

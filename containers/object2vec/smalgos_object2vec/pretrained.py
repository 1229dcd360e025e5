"""Pretrained token embeddings from the `auxiliary` channel.

`enc0_vocab_file` is JSON `{"word": id, ...}` (ids 0 .. enc0_vocab_size-1); the
`enc0_pretrained_embedding_file` is GloVe's text format, `word v1 ... vd` per line with d =
enc0_token_embedding_dim (a first line `<count> <d>`, as word2vec's text files have, is skipped).
Row `id` of the table is the vector of the word the vocabulary maps to `id`; ids without a vector
(words the embedding file lacks) are NaN here and keep their random initial values in the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smalgos.errors import ClientError

from .declaration import EncoderSpec


def _aux_file(folder: Path | None, name: str, hyperparameter: str) -> Path:
    if folder is None:
        raise ClientError(f"Hyperparameter {hyperparameter}={name}: the job has no 'auxiliary' channel to read it from")
    path = Path(folder) / name
    if not path.is_file():
        present = sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []
        raise ClientError(f"Hyperparameter {hyperparameter}={name}: file not found in the 'auxiliary' channel "
                          f"({folder}; files there: {', '.join(present) or 'none'})")
    return path


def read_vocabulary(path: Path, vocab_size: int, hyperparameter: str, size_name: str) -> dict[str, int]:
    """`{"word": id}` with every id an integer 0 .. vocab_size-1."""
    try:
        vocab = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(f"{hyperparameter} {path.name}: not valid JSON ({exc})") from None
    if not isinstance(vocab, dict):
        raise ClientError(f'{hyperparameter} {path.name}: expected a JSON object {{"word": id, ...}}')
    for word, token in vocab.items():
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ClientError(f"{hyperparameter} {path.name}: word {word!r} has id {json.dumps(token)[:30]}, "
                              f"not an integer 0 .. {size_name}-1 ({vocab_size - 1})")
    return vocab


def read_glove(path: Path, words: dict[str, int], table: np.ndarray, hyperparameter: str, dim_name: str) -> int:
    """Fill `table`'s rows from the GloVe file; returns how many rows were filled."""
    dim, filled = table.shape[1], 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            parts = raw.rstrip(b"\r\n").split(b" ")
            while parts and parts[-1] == b"":
                parts.pop()
            if not parts:
                continue
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header line
            if len(parts) != dim + 1:
                raise ClientError(f"{hyperparameter} {path.name} line {number}: {len(parts) - 1} value(s) after "
                                  f"the word, but {dim_name} is {dim}")
            word = parts[0].decode("utf-8", errors="replace")
            token = words.get(word)
            if token is None:
                continue
            try:
                table[token] = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise ClientError(f"{hyperparameter} {path.name} line {number}: the values after {word!r} are "
                                  "not all numbers") from None
            filled += 1
    return filled


def pretrained_table(spec: EncoderSpec, side: str, folder: Path | None, log=None) -> np.ndarray | None:
    """(vocab_size, token_embedding_dim) float32, NaN rows where no vector was given; None when
    `side` names no pretrained embedding file."""
    if not spec.pretrained_embedding_file:
        return None
    vocab_name = f"{side}_vocab_file"
    if not spec.vocab_file:
        raise ClientError(f"Hyperparameter {side}_pretrained_embedding_file needs {vocab_name}")
    words = read_vocabulary(_aux_file(folder, spec.vocab_file, vocab_name), spec.vocab_size, vocab_name,
                            f"{side}_vocab_size")
    name = f"{side}_pretrained_embedding_file"
    table = np.full((spec.vocab_size, spec.token_embedding_dim), np.nan, np.float32)
    filled = read_glove(_aux_file(folder, spec.pretrained_embedding_file, name), words, table, name,
                        f"{side}_token_embedding_dim")
    if not np.isfinite(table[~np.isnan(table).all(1)]).all():
        raise ClientError(f"{name} {spec.pretrained_embedding_file}: holds NaN or infinite values")
    if log is not None:
        log.info("%s: %d of %d token ids take a vector from %s (%s)", side, filled, spec.vocab_size,
                 spec.pretrained_embedding_file, "frozen" if spec.freeze_pretrained_embedding else "trained further")
    return table

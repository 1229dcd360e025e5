"""Every registered decoder: an empty stream gives no batch, and a whole-body decode of the same
bytes agrees with streaming it through a pipe."""

import json

import numpy as np
import pytest

from smalgos.formats import DECODERS, dense_to_recordio, parse_media_type

X = np.arange(24, dtype=np.float32).reshape(12, 2) / 4
BODIES = {
    "text/csv": "".join(f"{a},{b}\n" for a, b in X.tolist()).encode(),
    "application/json": json.dumps({"instances": [{"features": r} for r in X.tolist()]}).encode(),
    "application/jsonlines": "".join(json.dumps({"features": r}) + "\n" for r in X.tolist()).encode(),
    "text/libsvm": "".join(f"0 0:{a} 1:{b}\n" for a, b in X.tolist()).encode(),
    "application/x-recordio-protobuf": dense_to_recordio(X),
}


def test_every_registered_decoder_is_covered():
    assert set(BODIES) <= set(DECODERS)   # other modules (parquet) may register more


@pytest.mark.parametrize("media", sorted(BODIES))
def test_empty_stream_gives_no_batch(media, pipe_feed):
    with pipe_feed(b"", piece=1) as stream:
        assert list(DECODERS[media].iter_batches(stream, parse_media_type(media), default_label_size=0,
                                                 batch_size=5, source="train")) == []


@pytest.mark.parametrize("media", sorted(BODIES))
def test_stream_equals_whole_body(media, pipe_feed):
    dec, mt = DECODERS[media], parse_media_type(media)
    whole = dec.decode(BODIES[media], mt, default_label_size=0, source="request body")
    with pipe_feed(BODIES[media], piece=9) as stream:
        batches = list(dec.iter_batches(stream, mt, default_label_size=0, batch_size=5, source="train"))
    assert [len(b) for b in batches] == [5, 5, 2]
    dense = lambda b: b.dense_features()
    np.testing.assert_array_equal(np.concatenate([dense(b) for b in batches]), dense(whole))
    np.testing.assert_array_equal(dense(whole), X)

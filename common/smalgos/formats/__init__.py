"""The wire formats: a MIME registry of decoders (bytes or streams → `Batch`) and encoders
(`Predictions` → bytes), shared by training (File and Pipe mode) and serving.

Registered here: text/csv, application/json, application/jsonlines, text/libsvm,
application/x-recordio-protobuf, application/x-parquet (decoders; pyarrow is imported only when a
parquet body arrives), text/plain and the vision types that only their algorithms read (`opaque`);
the same less libsvm, parquet, text and the opaque types, plus image/png and
application/x-protobuf that only their algorithms write (encoders).
"""

from __future__ import annotations

from .batch import Batch
from .csv import CSVDecoder, CSVEncoder, parse_csv
from .jsonformat import (JSONDecoder, JSONEncoder, JSONLinesDecoder, JSONLinesEncoder,
                         decode_json, decode_jsonlines)
from .libsvm import LibSVMDecoder, parse_libsvm
from .media import (ALIASES, CSV, JSON, JSONLINES, LIBSVM, RECORDIO_PROTOBUF, MediaType,
                    check_params, parse_accept, parse_media_type)
from .opaque import opaque_decoders, opaque_encoders
from .parquet import ParquetDecoder
from .predictions import Predictions
from .protobuf import (RecordIOProtobufDecoder, RecordIOProtobufEncoder, decode_predictions,
                       dense_to_recordio, sparse_to_recordio, write_dense, write_sparse)
from .registry import (DECODERS, ENCODERS, Decoder, Encoder, get_decoder, get_encoder,
                       negotiate_accept, negotiate_media_type, register_decoder, register_encoder)
from .text import TextDecoder

for _dec in (CSVDecoder(), JSONDecoder(), JSONLinesDecoder(), LibSVMDecoder(),
             RecordIOProtobufDecoder(), ParquetDecoder(), TextDecoder(), *opaque_decoders()):
    register_decoder(_dec)
for _enc in (CSVEncoder(), JSONEncoder(), JSONLinesEncoder(), RecordIOProtobufEncoder(),
             *opaque_encoders()):
    register_encoder(_enc)
del _dec, _enc

__all__ = [
    "ALIASES", "CSV", "JSON", "JSONLINES", "LIBSVM", "RECORDIO_PROTOBUF",
    "Batch", "Predictions", "MediaType", "Decoder", "Encoder", "DECODERS", "ENCODERS",
    "parse_media_type", "parse_accept", "check_params",
    "get_decoder", "get_encoder", "negotiate_accept", "negotiate_media_type",
    "register_decoder", "register_encoder",
    "CSVDecoder", "CSVEncoder", "parse_csv",
    "JSONDecoder", "JSONEncoder", "JSONLinesDecoder", "JSONLinesEncoder", "decode_json",
    "decode_jsonlines",
    "LibSVMDecoder", "parse_libsvm", "ParquetDecoder",
    "RecordIOProtobufDecoder", "RecordIOProtobufEncoder", "decode_predictions",
    "dense_to_recordio", "sparse_to_recordio", "write_dense", "write_sparse",
]

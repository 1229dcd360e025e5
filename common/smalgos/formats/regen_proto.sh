#!/usr/bin/env bash
# Regenerates record_pb2.py from record.proto with grpcio-tools' bundled protoc.
# The bundled protoc (libprotoc 33.x) writes a runtime-version check that refuses protobuf
# runtimes older than itself; the project supports protobuf >= 4.25, whose runtime reads the
# rest of that code fine, so the check is stripped (sed below). Needs: pip install grpcio-tools
set -euo pipefail
cd "$(dirname "$0")"
python -m grpc_tools.protoc -I. --python_out=. record.proto
python - <<'PY'
import re, pathlib
p = pathlib.Path("record_pb2.py")
src = p.read_text()
src = re.sub(r"from google\.protobuf import runtime_version as _runtime_version\n", "", src)
src = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", src, flags=re.S)
src = src.replace('"""Generated protocol buffer code."""',
                  '"""Generated protocol buffer code (see regen_proto.sh; runtime-version check removed)."""')
p.write_text(src)
PY

"""Drive the SageMaker Python SDK v3 (`sagemaker` 3.x) for tests/container/test_sdk_v3.py.

Run with the v3 virtual environment's python (scripts/sdk3-venv.sh), never imported by pytest:
v2 and v3 cannot share one environment. One JSON request on stdin, one JSON answer on stdout (the
SDK's own logging goes to stderr). Actions:

- `train`: `ModelTrainer(training_image=…, training_mode=Mode.LOCAL_CONTAINER)` on local
  folders; answers the local path of the model.tar.gz it wrote.
- `serve`: a local endpoint through v3's local session (`sagemaker.core.local.LocalSession`:
  `create_model`, `create_endpoint_config`, `create_endpoint`, then `invoke_endpoint` on its
  runtime client); answers the response body (base64) and deletes the endpoint.
- `model_builder`: `ModelBuilder(image_uri=…, model_path=…, mode=Mode.LOCAL_CONTAINER)`
  `.build()` then `.deploy()`; answers whether it served, or the exception that stopped it and
  the SDK source line that raised it. `s3_model_data_url` is set (to the model's file:// URL) only
  because without it `build()` asks STS for the account to name a default bucket
  (`model_builder_utils.py` `_get_serve_setting` → `Session.default_bucket`), which needs AWS.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
import uuid


def train(req: dict) -> dict:
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=req["image"], training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local", instance_count=1),
        hyperparameters=req["hyperparameters"], local_container_root=req["root"],
        base_job_name=req["job_name"], role=req["role"])
    trainer.train(input_data_config=[InputData(channel_name=name, data_source=c["path"],
                                               content_type=c["content_type"])
                                     for name, c in req["channels"].items()],
                  wait=True, logs=False)
    return {"model_tar": f"{req['root']}/compressed_artifacts/model.tar.gz"}


def serve(req: dict) -> dict:
    from sagemaker.core.local import LocalSession

    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": req["root"],
                                "serving_port": req["port"]}}
    client, name = session.sagemaker_client, f"smalgos-v3-{uuid.uuid4().hex[:8]}"
    client.create_model(ModelName=name, PrimaryContainer={"Image": req["image"], "ModelDataUrl": req["model_data"],
                                                          "Environment": {}})
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "local"}])
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)  # returns once /ping answers 200
    try:
        answer = session.sagemaker_runtime_client.invoke_endpoint(
            Body=base64.b64decode(req["body"]), EndpointName=name, ContentType=req["content_type"],
            Accept=req["accept"])
        body = answer["Body"]
        data, status = body.read(), body.status
        body.close()
    finally:
        client.delete_endpoint(EndpointName=name)
    return {"status": status, "body": base64.b64encode(data).decode()}


def model_builder(req: dict) -> dict:
    from sagemaker.serve import ModelBuilder
    from sagemaker.serve.mode.function_pointers import Mode

    try:
        builder = ModelBuilder(image_uri=req["image"], model_path=req["model_path"], mode=Mode.LOCAL_CONTAINER,
                               s3_model_data_url=f"file://{req['model_path']}", role_arn=req["role"])
        builder.build()
        endpoint = builder.deploy()
    except Exception as exc:  # noqa: BLE001 - the answer is the exception
        frames = traceback.extract_tb(exc.__traceback__)
        sdk = [f for f in frames if "/sagemaker/" in f.filename]
        where = sdk[-1] if sdk else frames[-1]
        return {"served": False, "exception": type(exc).__name__, "message": str(exc),
                "cause": repr(exc.__cause__) if exc.__cause__ else None,
                "raised_at": f"{where.filename.split('site-packages/')[-1]}:{where.lineno} {where.line}"}
    endpoint.delete()
    return {"served": True}


ACTIONS = {"train": train, "serve": serve, "model_builder": model_builder}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    result = ACTIONS[request["action"]](request)
    sys.stdout.write("\n" + json.dumps(result) + "\n")

"""User scripts as SageMaker's framework users write them, for the script-mode tests."""

TRAIN = '''
import argparse, json, os
import numpy as np
import xgboost as xgb

parser = argparse.ArgumentParser()
parser.add_argument("--max_depth", type=int, default=3)
parser.add_argument("--eta", type=float, default=0.3)
parser.add_argument("--num_round", type=int, default=10)
parser.add_argument("--objective", type=str, default="reg:squarederror")
parser.add_argument("--model_dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
args, unknown = parser.parse_known_args()

data = np.loadtxt(os.path.join(args.train, "train.csv"), delimiter=",", dtype=np.float32)
dtrain = xgb.DMatrix(data[:, 1:], label=data[:, 0])
booster = xgb.train({"max_depth": args.max_depth, "eta": args.eta, "objective": args.objective},
                    dtrain, num_boost_round=args.num_round)
booster.save_model(os.path.join(args.model_dir, "xgboost-model"))
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
seen["argv"] = __import__("sys").argv[1:]
seen["cwd"] = os.getcwd()
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("trained", booster.num_boosted_rounds(), "rounds")
'''

RAISES = '''
def load(path):
    raise ValueError("column 'age' is missing from " + path)

load("train.csv")
'''

EXITS = '''
import sys
print("giving up", file=sys.stderr)
sys.exit(3)
'''

WAITS_FOR_SIGTERM = '''
import os, signal, sys, time

def on_term(signum, frame):
    open(os.path.join(os.environ["SM_MODEL_DIR"], "got-sigterm"), "w").write("yes")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(120)
'''

# model_fn + predict_fn (the SDK's usual XGBoost inference script); input and output are the defaults.
INFERENCE = '''
import os
import xgboost as xgb

def model_fn(model_dir):
    return xgb.Booster(model_file=os.path.join(model_dir, "model.ubj"))

def predict_fn(data, model):
    return (model.predict(data) > 0.5).astype("float32")
'''

# JSON in, JSON out, with the content type the script names.
JSON_HANDLERS = '''
import json
import numpy as np
import xgboost as xgb

def input_fn(body, content_type):
    assert content_type == "application/json", content_type
    return xgb.DMatrix(np.asarray(json.loads(body)["rows"], dtype=np.float32))

def output_fn(prediction, accept):
    return json.dumps({"p": [round(float(v), 3) for v in prediction], "accept": accept}), "application/json"
'''

TRANSFORM = '''
def model_fn(model_dir):
    return "a model"

def transform_fn(model, body, content_type, accept):
    return f"{model}|{body.decode()}|{content_type}|{accept}"
'''

"""XGBoost in SageMaker's algorithm mode (`sagemaker-xgboost:1.7-1` / `:3.0-5` contract), on XGBoost 3.

- `declaration`: hyperparameters (AWS's validation), channels, metrics, serving formats, variants.
- `train.train(job)`: channels → DMatrix → boosting loop (AWS's log lines, checkpoints, early stopping).
- `serve.load_model(model_dir)`: the model the serving app calls per request.
- `model_io`, `legacy`: `xgboost-model` in XGBoost's own format; reads what AWS's images wrote
  (UBJSON/JSON, the old binary format XGBoost 3 dropped, pickled Boosters read as data).
"""

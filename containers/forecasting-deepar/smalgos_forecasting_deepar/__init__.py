"""SageMaker DeepAR forecasting (`forecasting-deepar:1`): an autoregressive RNN trained over many
related series, forecasting by Monte-Carlo sample paths; built on GluonTS's PyTorch DeepAR."""

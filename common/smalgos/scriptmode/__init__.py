"""Script (framework) mode: the user's own training script and inference handlers, run under the
SageMaker training-script contract as AWS's `sagemaker-training` toolkit implements it.

Training (`training.run_script`, dispatched by `smalgos.training.runner` when the hyperparameters
carry `sagemaker_program` and the algorithm declares `script_mode`):
  - the code: `sagemaker_submit_directory` (a directory, `file://` directory, local or `s3://`
    `sourcedir.tar.gz`) or the `code` channel, laid out in `/opt/ml/code` (`source.py`);
  - `requirements.txt` there installed with pip first;
  - the program run as `python <program> --name value ...` in `/opt/ml/code`, with the `SM_*`
    variables the toolkit sets (`contract.py`);
  - its exit code is the job's; its traceback's last lines go to `/opt/ml/output/failure`;
    SIGTERM is forwarded to it.

Serving (`serving.load_script_model`): SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY (the SDK's
`Model` repacks the code into model.tar.gz under `code/`) name a module whose `model_fn`,
`input_fn`, `predict_fn`, `output_fn` (or `transform_fn`) replace the algorithm's defaults.
"""

PROGRAM_PARAM = "sagemaker_program"
SUBMIT_DIR_PARAM = "sagemaker_submit_directory"

"""The command line and SM_* values of the training-script contract, as AWS's sagemaker-training
toolkit (mapping.to_cmd_args / to_env_vars, environment.read_hyperparameters) writes them."""

from __future__ import annotations

from smalgos.scriptmode.contract import Hyperparameters, cmd_args, env_vars


def test_hyperparameters_are_json_decoded_and_split_from_the_platforms():
    hps = Hyperparameters.split({
        "epochs": "10", "lr": "0.1", "name": '"run a"', "flag": "true", "raw": "not json", "layers": "[1, 2]",
        "sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"',
        "_tuning_objective_metric": '"validation:auc"', "sagemaker_mpi_enabled": "true"})
    assert hps.user == {"epochs": 10, "lr": 0.1, "name": "run a", "flag": True, "raw": "not json", "layers": [1, 2]}
    assert hps.platform == {"sagemaker_program": "train.py", "sagemaker_submit_directory": "/opt/ml/code",
                            "_tuning_objective_metric": "validation:auc"}
    assert hps.framework == {"sagemaker_mpi_enabled": True}


def test_command_line_is_sorted_with_python_text_of_each_value():
    args = cmd_args({"lr": 0.1, "b": 4, "flag": True, "name": "run a", "layers": [1, 2], "opts": {"y": 2, "x": 1},
                     "none": None})
    assert args == ["-b", "4", "--flag", "True", "--layers", "[1, 2]", "--lr", "0.1", "--name", "run a",
                    "--none", "", "--opts", "x=1,y=2"]


def test_env_values_are_strings_or_compact_sorted_json():
    assert env_vars({"model_dir": "/opt/ml/model", "hosts": ["algo-1", "algo-2"], "num_gpus": 0,
                     "hps": {"b": 1, "a": "x"}, "module_name": None}) == {
        "SM_MODEL_DIR": "/opt/ml/model", "SM_HOSTS": '["algo-1","algo-2"]', "SM_NUM_GPUS": "0",
        "SM_HPS": '{"a":"x","b":1}', "SM_MODULE_NAME": ""}

"""The streaming training driver (smalgos.training.streaming) over a real core (K-Means)."""
import numpy as np

from smalgos.localjob import LocalJob
from smalgos.training.runner import run_training

POINTS = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), 20, axis=0)


def _job(tmp_path, host):
    job = LocalJob(tmp_path / host)
    job.write_config({"k": 3, "feature_dim": 2, "mini_batch_size": 60}, {"train": {"ContentType": "text/csv"}},
                     resources={"current_host": host, "hosts": ["algo-1", "algo-2"],
                                "network_interface_name": "eth0", "current_instance_type": "local"})
    job.add_file("train", "a.csv", "".join(f"{x},{y}\n" for x, y in POINTS).encode())
    return job


def test_only_the_master_host_writes_the_model(tmp_path, caplog):
    master, other = _job(tmp_path, "algo-1"), _job(tmp_path, "algo-2")
    assert run_training("kmeans", master.paths, install_signal_handler=False) == 0
    assert run_training("kmeans", other.paths, install_signal_handler=False) == 0
    assert sorted(p.name for p in master.paths.model_dir.iterdir()) == ["model_algo-1.json",
                                                                        "model_algo-1.safetensors"]
    assert list(other.paths.model_dir.iterdir()) == []
    assert other.paths.success_file.exists()
    assert "Host algo-2 is not the master (algo-1): the model is written by the master only" in caplog.text

"""The image's command line: `train`, `serve`, and no command at all (SDK v3's local mode)."""
import pytest

from smalgos import cli
from smalgos.localjob import LocalJob


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("SMALGOS_ALGORITHM", "test-centroid")
    return LocalJob(tmp_path)


def test_no_command_with_a_job_configuration_trains(job):
    job.write_config({"num_classes": 2}, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", b"0,0,0\n1,5,5\n0,1,0\n1,4,5\n")
    assert cli.main([]) == 0
    assert (job.paths.model_dir / "centroids.npy").is_file()
    assert job.paths.success_file.is_file()


def test_no_command_with_only_a_model_serves(job, monkeypatch):
    job.paths.model_dir.mkdir(parents=True, exist_ok=True)
    (job.paths.model_dir / "centroids.npy").write_bytes(b"x")
    served = []
    import smalgos.serving.server as server
    monkeypatch.setattr(server, "serve", lambda name: served.append(name) or 0)
    assert cli.main([]) == 0
    assert served == ["test-centroid"]


def test_no_command_and_nothing_there_is_a_usage_error(job, capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "no command given" in err and "run with `train` or `serve`" in err
    assert not job.paths.model_dir.exists() or not any(job.paths.model_dir.iterdir())

import io
import re

import pytest

from smalgos.declaration import load_algorithm
from smalgos.metrics import LOSS, SCORE, MetricsLogger, quality_line


def test_lines_have_aws_shape():
    assert quality_line("algo-1", "train", "binary_f_beta", 0.97, SCORE, epoch=0) == \
        "#quality_metric: host=algo-1, epoch=0, train binary_f_beta <score>=0.97"
    assert quality_line("algo-2", "test", "mse", 0.5, LOSS) == "#quality_metric: host=algo-2, test mse <loss>=0.5"
    assert quality_line("algo-1", "train", "loss", 1.5, LOSS, epoch=3, batch=7) == \
        "#quality_metric: host=algo-1, epoch=3, batch=7 train loss <loss>=1.5"


def test_aws_regexes_scrape_our_lines():
    out = io.StringIO()
    m = MetricsLogger("algo-1", out, metrics=load_algorithm("linear-learner").metrics)
    m.quality("validation", "mse_objective", 0.25, epoch=2)
    m.quality("validation", "mse_objective", 0.125)
    m.quality("test", "mse", 0.5)
    m.quality("validation", "binary_f_1.000", 0.75)
    m.progress(40)
    m.throughput(1234.5)
    text = out.getvalue()
    # Linear Learner's own MetricDefinitions, from a real tuning job (spec/contract.md §2.5).
    aws = {
        r"#quality_metric: host=\S+, epoch=\S+, validation \S+_objective <loss>=(\S+)": "0.25",
        r"#quality_metric: host=\S+, validation \S+_objective <loss>=(\S+)": "0.125",
        r"#quality_metric: host=\S+, test mse <loss>=(\S+)": "0.5",
        r"#quality_metric: host=\S+, validation binary_f_\S+ <score>=(\S+)": "0.75",
        r"#progress_metric: host=\S+, completed (\S+) %": "40",
        r"#throughput_metric: host=\S+, train throughput=(\S+) records/second": "1234.5",
    }
    for regex, value in aws.items():
        assert re.search(regex, text).group(1) == value, regex


def test_declared_regexes_of_the_test_algorithm_match_what_it_prints(tmp_path):
    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training
    job = LocalJob(tmp_path)
    job.write_config({"num_classes": 2, "epochs": 2}, {"train": {"ContentType": "text/csv"},
                                                        "test": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", b"0,0,0\n1,5,5\n0,1,0\n1,4,5\n")
    job.add_file("test", "a.csv", b"0,0,1\n1,5,4\n")
    import contextlib
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_training("test-centroid", job.paths, install_signal_handler=False) == 0
    text = out.getvalue()
    for metric in load_algorithm("test-centroid").metrics:
        found = re.findall(metric.regex, text)
        assert found, f"{metric.name}: {metric.regex} matched nothing"
        float(found[-1])


def test_a_quality_line_takes_its_kind_from_the_declared_metric_and_refuses_undeclared_ones():
    out = io.StringIO()
    m = MetricsLogger("algo-1", out, metrics=load_algorithm("linear-learner").metrics)
    m.quality("test", "dcg", 0.5)
    m.quality("test", "multiclass_log_loss", 0.25)  # AWS prints this loss as a <score>
    m.quality("train", "mse_objective", 2.0, epoch=0)
    assert out.getvalue().splitlines() == [
        "#quality_metric: host=algo-1, test dcg <score>=0.5",
        "#quality_metric: host=algo-1, test multiclass_log_loss <score>=0.25",
        "#quality_metric: host=algo-1, epoch=0, train mse_objective <loss>=2.0",
    ]
    with pytest.raises(LookupError, match="no declared metric is printed as test no_such_metric"):
        m.quality("test", "no_such_metric", 1.0)
    with pytest.raises(LookupError, match=r"test dcg \(per epoch\)"):  # declared as a final value only
        m.quality("test", "dcg", 1.0, epoch=3)

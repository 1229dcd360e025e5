"""Metric log lines in the format SageMaker's regexes scrape from first-party algorithms' logs.

    #quality_metric: host=algo-1, epoch=0, train binary_f_beta <score>=0.97
    #quality_metric: host=algo-1, test mse <loss>=0.41
    #progress_metric: host=algo-1, completed 20 % of epochs
    #throughput_metric: host=algo-1, train throughput=905.99 records/second

`<loss>` marks values to minimise, `<score>` values to maximise; `epoch=` is present on per-epoch
values and absent on final ones. A quality line is printed from the algorithm's declared metric
(`smalgos.declaration.quality_metric`): `MetricsLogger.quality` finds it, takes its kind, and
checks that the line it prints is one the declared regex scrapes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Sequence, TextIO

from .declaration import LOSS, SCORE, Metric

log = logging.getLogger("smalgos")


def quality_line(host: str, channel: str, name: str, value: float, kind: str,
                 epoch: int | None = None, batch: int | None = None) -> str:
    if kind not in (LOSS, SCORE):
        raise ValueError(f"metric kind must be {LOSS!r} or {SCORE!r}, not {kind!r}")
    where = f"host={host}, "
    if epoch is not None:
        where += f"epoch={epoch}, "
        if batch is not None:
            where += f"batch={batch} "
    return f"#quality_metric: {where}{channel} {name} <{kind}>={_fmt(value)}"


def _fmt(value: float) -> str:
    return repr(float(value))


class MetricsLogger:
    """Prints metric lines for one host. Lines go to stdout (CloudWatch reads stdout and stderr).

    `metrics` are the algorithm's declared metrics: `quality` prints only lines that one of them
    stands for."""

    def __init__(self, host: str = "algo-1", stream: TextIO | None = None, algorithm: str = "",
                 metrics: Sequence[Metric] = ()):
        self.host = host
        self._stream = stream
        self.algorithm = algorithm
        self.metrics = tuple(metrics)

    def _emit(self, line: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def declared(self, channel: str, name: str, per_epoch: bool = False) -> Metric:
        """The declared metric that the quality line `<channel> <name>` stands for."""
        for metric in self.metrics:
            if metric.prints(channel, name, per_epoch):
                return metric
        raise LookupError(f"no declared metric is printed as {channel} {name}"
                          f"{' (per epoch)' if per_epoch else ''}: declare it with quality_metric()")

    def quality(self, channel: str, name: str, value: float, epoch: int | None = None,
                batch: int | None = None) -> None:
        """`#quality_metric: host=.., [epoch=.., ]<channel> <name> <loss|score>=<value>`, the kind
        taken from the declared metric."""
        metric = self.declared(channel, name, per_epoch=epoch is not None)
        line = quality_line(self.host, channel, name, value, metric.kind, epoch, batch)
        if batch is None and not re.search(metric.regex, line):  # declaration and line cannot drift apart
            raise RuntimeError(f"{line!r} does not match the regex of {metric.name}: {metric.regex}")
        self._emit(line)

    def progress(self, percent: float) -> None:
        self._emit(f"#progress_metric: host={self.host}, completed {_pct(percent)} % of epochs")

    def throughput(self, records_per_second: float, channel: str = "train") -> None:
        self._emit(f"#throughput_metric: host={self.host}, {channel} throughput={records_per_second!r} records/second")

    def score_summary(self, channel: str, name: str, value: float) -> None:
        """AWS's free-form summary line, e.g. `#test_score (algo-1) : ('mse', 0.41)`."""
        self._emit(f"#{channel}_score ({self.host}) : ({name!r}, {float(value)!r})")

    def metrics_json(self, operation: str, values: dict, start: float, end: float | None = None,
                     **dimensions) -> None:
        """The `#metrics {...}` timing line first-party images print."""
        body = {
            "StartTime": start,
            "EndTime": end if end is not None else time.time(),
            "Dimensions": {"Algorithm": self.algorithm, "Host": self.host, "Operation": operation, **dimensions},
            "Metrics": {k: {"sum": v, "count": 1, "min": v, "max": v} for k, v in values.items()},
        }
        self._emit("#metrics " + json.dumps(body))


def _pct(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else f"{p:.2f}"


def log_checked(logger: logging.Logger, regex: str, text: str) -> None:
    """Log `text`, a metric line in an algorithm's own format (the vision family's), after checking
    that its declared `regex` reads it: the declaration and the line cannot drift apart."""
    if not re.search(regex, text):
        raise RuntimeError(f"{text!r} does not match the declared metric regex {regex}")
    logger.info("%s", text)

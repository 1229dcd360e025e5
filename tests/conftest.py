import logging
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# The test-only algorithm(s) under tests/algorithms are importable as smalgos_<name>; shared test
# helpers under tests/unit (algo_helpers) by name.
sys.path.insert(0, str(TESTS / "algorithms"))
sys.path.insert(0, str(TESTS / "unit"))
# The algorithm packages, should the checkout not be installed editable.
for _folder in ("kmeans", "pca", "knn", "factorization-machines", "randomcutforest", "lda", "ipinsights",
                "forecasting-deepar", "blazingtext", "ntm", "object2vec", "seq2seq",
                "image-classification", "object-detection", "semantic-segmentation", "rl"):
    if str(TESTS.parent / "containers" / _folder) not in sys.path:
        sys.path.insert(0, str(TESTS.parent / "containers" / _folder))


@pytest.fixture(scope="session")
def sdk():
    """`sagemaker.amazon.common` (writers, read_records, RecordSerializer/Deserializer)."""
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    logging.getLogger("sagemaker.config").setLevel(logging.ERROR)
    from sagemaker.amazon import common

    return common


# ---- the end of a run: nothing may keep the process alive --------------------------------------
# A thread that is not a daemon (a library's, a local-mode container's log follower) keeps Python
# from exiting after pytest's summary, and CI then waits until its time-out. After the summary, a
# watchdog names what is still running (every thread's stack, and the child processes) and, past
# EXIT_GRACE_SECONDS, ends the process with pytest's own exit status.
EXIT_GRACE_SECONDS = 60
_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config):
    import os
    import threading

    def watchdog():
        import faulthandler
        import time

        time.sleep(EXIT_GRACE_SECONDS)
        alive = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
        sys.stderr.write(f"\npytest: the process did not exit {EXIT_GRACE_SECONDS} s after the summary; "
                         f"threads still running: {alive}; children: {_children(os.getpid())}\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(_exit_status["code"])

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


def _children(pid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{stat.parent.name}: {command[:200]}")
        except (OSError, IndexError, ValueError):
            continue
    return found

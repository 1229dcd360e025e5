"""`python -m smalgos_rl.nodes ADDRESS COUNT SECONDS`: wait until COUNT nodes of the Ray cluster at
ADDRESS are alive, then print one JSON line {"nodes": {ip: cpus}, "cpus": n, "gpus": n} and exit 0;
after SECONDS print what has joined and exit 3. A driver of its own, so that the job's runner
(smalgos_rl.cluster) never joins the cluster it forms.
"""

from __future__ import annotations

import json
import logging
import sys
import time


def main(address: str, count: int, seconds: float) -> int:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        deadline = time.monotonic() + seconds
        while True:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            summary = {"nodes": {n["NodeManagerAddress"]: n["Resources"].get("CPU", 0) for n in nodes}}
            if len(nodes) >= count:
                total = ray.cluster_resources()
                print(json.dumps({**summary, "cpus": total.get("CPU", 0), "gpus": total.get("GPU", 0)}), flush=True)
                return 0
            if time.monotonic() > deadline:
                print(json.dumps(summary), flush=True)
                return 3
            time.sleep(1.0)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))

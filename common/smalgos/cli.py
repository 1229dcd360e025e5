"""Command line: `train`, `serve` and `describe`.

In an image, `/usr/local/bin/train` and `/usr/local/bin/serve` run `python -m smalgos.cli train`
and `... serve`; the algorithm comes from `SMALGOS_ALGORITHM`, baked into the image.
`python -m smalgos.cli describe ALGO [--field variants]` prints the declaration as JSON and needs
only the standard library (the Makefile uses it to refuse variants an algorithm lacks).

Started with no command at all (the SageMaker Python SDK v3's local mode starts training
containers so, as SageMaker's framework images expect), the image trains when the job's
configuration is there (`/opt/ml/input/config/*.json`), serves when only a model is
(`/opt/ml/model`), and otherwise says what it takes and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .declaration import load_algorithm
from .environment import Paths, algorithm_name

JOB_CONFIG_FILES = ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json")


def implied_command(paths: Paths) -> str | None:
    """What a container started with no command is for: "train" when a training job's
    configuration is present, "serve" when only a model is, else None."""
    if any((paths.config_dir / name).is_file() for name in JOB_CONFIG_FILES):
        return "train"
    if paths.model_dir.is_dir() and any(paths.model_dir.iterdir()):
        return "serve"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        paths = Paths.from_env()
        command = implied_command(paths)
        if command is None:
            print(f"smalgos: no command given, and neither a training job's configuration ({paths.config_dir}/"
                  f"{{{','.join(JOB_CONFIG_FILES)}}}) nor a model ({paths.model_dir}) is there: run with `train`"
                  " or `serve`", file=sys.stderr)
            return 2
        print(f"smalgos: no command given; {paths.config_dir if command == 'train' else paths.model_dir} is "
              f"there, so: {command}", file=sys.stderr)
        argv = [command]
    parser = argparse.ArgumentParser(prog="smalgos")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--algorithm", help="override SMALGOS_ALGORITHM")
    d = sub.add_parser("describe")
    d.add_argument("algorithm")
    d.add_argument("--field", help="print one top-level field only (e.g. variants), one item a line")
    args = parser.parse_args(argv)

    if args.command == "describe":
        description = load_algorithm(args.algorithm).describe()
        if args.field:
            value = description[args.field]
            print("\n".join(map(str, value)) if isinstance(value, list) else json.dumps(value, indent=2))
        else:
            print(json.dumps(description, indent=2))
        return 0

    name = args.algorithm or algorithm_name()
    if args.command == "train":
        from .training.runner import run_training

        return run_training(name)
    from .serving.server import serve

    return serve(name)


def train() -> None:
    sys.exit(main(["train", *sys.argv[1:]]))


def serve() -> None:
    sys.exit(main(["serve", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())

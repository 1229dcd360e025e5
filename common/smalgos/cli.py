"""Command line: `train`, `serve` and `describe`.

In an image, `/usr/local/bin/train` and `/usr/local/bin/serve` run `python -m smalgos.cli train`
and `... serve`; the algorithm comes from `SMALGOS_ALGORITHM`, baked into the image.
`python -m smalgos.cli describe ALGO [--field variants]` prints the declaration as JSON and needs
only the standard library (the Makefile uses it to refuse variants an algorithm lacks).
"""

from __future__ import annotations

import argparse
import json
import sys

from .declaration import load_algorithm
from .environment import algorithm_name


def main(argv: list[str] | None = None) -> int:
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

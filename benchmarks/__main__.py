"""`python -m benchmarks [name ...]` runs the benchmarks (default: all) and prints tables."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("data_gen", "ingest", "features", "training", "serving", "monitoring")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=BENCHMARKS, choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    args = parser.parse_args()
    for name in args.names:
        importlib.import_module(f"benchmarks.bench_{name}").main(quick=args.quick)


if __name__ == "__main__":
    main()

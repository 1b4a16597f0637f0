"""Command line: argument parsing and printing only; the work happens in the package's modules."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mlip_autopipec.exceptions import MlipAutopipecError

log = logging.getLogger("mlip_autopipec")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from mlip_autopipec.config import load_config
    from mlip_autopipec.generator import InitialExplorer, build_seed
    from mlip_autopipec.generator.pool import write_pool
    from mlip_autopipec.progress import progress_bar

    cfg = load_config(args.config)
    seed = build_seed(cfg.structure)
    count = args.count or cfg.generator.pool_size
    with progress_bar("generating", total=count, enabled=count >= 1000) as update:
        pool = InitialExplorer(cfg.generator).generate(seed, count, progress=update)
    write_pool(pool, args.output)
    ops: dict[str, int] = {}
    for atoms in pool:
        ops[atoms.info["operation"]] = ops.get(atoms.info["operation"], 0) + 1
    summary = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
    print(f"wrote {len(pool)} structures of {seed.get_chemical_formula()} to {args.output} ({summary})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlip-autopipec",
        description="From a crystal and a DFT setup to a fitted, validated ACE potential.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="draw the starting pool of structures from a config into an extxyz file")
    p.add_argument("config", type=Path, help="YAML config with 'structure' and 'generator' sections")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (extxyz; provenance in each frame's info)")
    p.add_argument("-n", "--count", type=int, default=None, help="pool size (default: generator.pool_size)")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except MlipAutopipecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

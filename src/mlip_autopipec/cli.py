"""Command line: argument parsing and printing only; the work happens in the package's modules."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from mlip_autopipec.examples import EXAMPLES
from mlip_autopipec.exceptions import Interrupted, MlipAutopipecError
from mlip_autopipec.fileio import os_error_sentence

log = logging.getLogger("mlip_autopipec")


def _setup_logging(verbose: bool) -> None:
    """Our messages at INFO on stderr (DEBUG with -v); other libraries' only from WARNING."""
    ours = logging.getLogger("mlip_autopipec")
    for old in [h for h in ours.handlers + logging.getLogger().handlers if getattr(h, "_mlip_cli", False)]:
        ours.removeHandler(old)  # main() called again in one process (tests, notebooks): no doubled lines
        logging.getLogger().removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._mlip_cli = True  # type: ignore[attr-defined]
    handler.addFilter(
        lambda record: not getattr(record, "file_only", False)
    )  # the log file's detail, not the terminal's
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    ours.propagate = False
    others = logging.StreamHandler(sys.stderr)
    others._mlip_cli = True  # type: ignore[attr-defined]
    others.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    others.setLevel(logging.DEBUG if verbose else logging.WARNING)  # libraries' INFO chatter (Dask) stays out
    logging.getLogger().addHandler(others)
    # Dask's own loggers (also in spawned workers, which inherit the environment)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose else "warning")


def cmd_generate(args: argparse.Namespace) -> int:
    from mlip_autopipec.config import load_config
    from mlip_autopipec.generator import build_pool, write_pool
    from mlip_autopipec.progress import progress_bar

    cfg = load_config(args.config)
    count = args.count or cfg.generator.pool_size
    with progress_bar("generating", total=count, enabled=count >= 1000) as update:
        pool = build_pool(cfg, count, progress=update)
    write_pool(pool, args.output)
    ops: dict[str, int] = {}
    seeds: dict[str, int] = {}
    for atoms in pool:
        ops[atoms.info["operation"]] = ops.get(atoms.info["operation"], 0) + 1
        seeds[atoms.info["seed"]] = seeds.get(atoms.info["seed"], 0) + 1
    summary = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
    per_seed = ", ".join(f"{n} {name}" for name, n in seeds.items())
    print(f"wrote {len(pool)} structures to {args.output} (seeds: {per_seed}; {summary})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mlip_autopipec.config import load_config
    from mlip_autopipec.pipeline.run import run_pipeline
    from mlip_autopipec.report.render import last_lines

    cfg = load_config(args.config)
    summary = run_pipeline(
        cfg, workdir=args.workdir, force=args.force, progress=not args.no_progress, retry_failed=args.retry_failed
    )
    print(f"report: {summary.workdir}/report/summary.md")
    for line in last_lines(summary):
        print(line)
    return 0 if summary.quality_bar.passed or not args.strict else 1


def cmd_init(args: argparse.Namespace) -> int:
    from mlip_autopipec.examples import COMPANIONS, example_text, write_example

    if args.output is None:
        sys.stdout.write(example_text(args.example))
        if COMPANIONS.get(args.example):
            print(
                f"note: this example reads {', '.join(COMPANIONS[args.example])} beside it: "
                "use -o FILE to write them too",
                file=sys.stderr,
            )
        return 0
    try:
        written = write_example(args.example, args.output, overwrite=args.overwrite)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    extra = f" (and {', '.join(str(p) for p in written[1:])}, which it reads)" if written[1:] else ""
    print(
        f"wrote {args.output}{extra}: edit it, check it with `mlip-autopipec validate {args.output}`, then "
        f"`mlip-autopipec run {args.output}`"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mlip_autopipec.config import load_config
    from mlip_autopipec.pipeline.checks import preflight

    cfg = load_config(args.config)
    for line in preflight(cfg):
        print(line)
    print(f"{args.config}: valid")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from mlip_autopipec.pipeline.status import status_lines

    for line in status_lines(args.workdir):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mlip_autopipec.pipeline.status import export_dataset

    path, n = export_dataset(args.workdir, args.format, args.output, label=args.label)
    print(f"wrote {n} labelled structures to {path}")
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
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (extxyz; provenance in each frame's info)"
    )
    p.add_argument("-n", "--count", type=int, default=None, help="pool size (default: generator.pool_size)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run (or continue) the whole pipeline: generate, label, fit, validate, report")
    p.add_argument("config", type=Path, help="YAML config (see `mlip-autopipec init`)")
    p.add_argument("--workdir", type=Path, default=None, help="work directory (overrides the config's workdir)")
    p.add_argument(
        "--force", action="store_true", help="accept a config that changed in a way that invalidates finished work"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when the quality bar is not met")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="label the structures whose labelling failed again (fix the cause first; earlier reasons are kept in "
        "their provenance)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("init", help="write a commented example config")
    p.add_argument(
        "--example",
        choices=list(EXAMPLES),
        default="cu-emt",
        help="which example (default cu-emt; cuau-emt: Cu-Au alloys, phases, a surface; si-qe-al: pw.x active "
        "learning; cuau-fm: Cu-Au guided by a foundation model)",
    )
    p.add_argument("-o", "--output", type=Path, default=None, help="file to write (default: print to stdout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("validate", help="check a config without running anything")
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("status", help="what a work directory holds: structures, failures, the latest fit")
    p.add_argument("workdir", type=Path)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "export",
        help="write the labelled structures of a work directory to a file",
        description="Write labelled structures as extended XYZ or as pacemaker's .pckl.gzip "
        "(a pandas pickle: loading one runs code from the file, so load only files you trust).",
    )
    p.add_argument("workdir", type=Path)
    p.add_argument(
        "--format",
        choices=["extxyz", "pacemaker"],
        default=None,
        help="must agree with the output's name; default: from the name (.xyz/.extxyz: extxyz, .pckl.gzip: pacemaker)",
    )
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="the file to write, exactly this path: .xyz, .pckl.gzip"
    )
    p.add_argument(
        "--label", choices=["train", "validation"], default=None, help="only this split (default: all labelled)"
    )
    p.set_defaults(func=cmd_export)
    return parser


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def _log_hint(err: BaseException) -> str:
    path = getattr(err, "log_file", None)
    return f" (details in {path})" if path else ""


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error a user can cause ends in one sentence on stderr and exit status 2
    (130 on Ctrl-C, 128 + the signal's number on SIGTERM/SIGHUP); ``run`` keeps the traceback in its log file."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    restore = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):  # a batch system's stop: unwind like Ctrl-C, keep finished work
            restore[sig] = signal.signal(sig, _stop_on_signal)
    try:
        return args.func(args)
    except MlipAutopipecError as err:
        print(f"error: {err}{_log_hint(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {os_error_sentence(err)}{_log_hint(err)}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"{err}: finished work is kept; run the same command again to continue", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())

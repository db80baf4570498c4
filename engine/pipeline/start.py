"""Shared start of every stage and command: the project's imports, logging, params loading + validation, and user
errors as one line with exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import UserError, error_lines


def use_project_imports(root: str | Path | None = None) -> None:
    """Make the project's own packages importable from its root without installing them, as `python -m` would
    (the `trainline` script's sys.path starts at its bin directory; DVC runs stages from the repo root, also in
    its temporary and queued experiment copies)."""
    path = str(Path(root or os.getcwd()).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)


def setup_logging(verbose: bool = True) -> None:
    """Plain lines on stderr from the main process only (other ranks stay quiet)."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)
    level = logging.INFO if verbose and rank == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)


def load_checked(params: str | Path = "params.yaml", *, data: bool = True) -> dict[str, Any]:
    """Load and validate params; warnings are logged, problems raise ConfigError (all at once). `data=False`
    leaves the datasets unbuilt (the prepare stage is about to rewrite them)."""
    from engine.config import load_params
    from engine.config.validate import check_params

    use_project_imports()
    raw = load_params(params)
    if not raw:
        # Otherwise the first problem reported would be a missing train_cfg.max_iters, which hides the real one.
        raise UserError(f"{params}: the file is empty; write its sections (see docs/config.md) or pass --params "
                        f"with another file")
    cfg, warnings = check_params(raw, data=data)
    for warning in warnings:
        logging.getLogger("trainline").warning("%s", warning)
    return cfg


def run_main(main: Callable[[], Any]) -> None:
    """Call `main`; a UserError prints `error: <message>` and exits 2 without a traceback."""
    try:
        main()
    except UserError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)  # noqa: T201 - the user-facing lines
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)  # noqa: T201
        sys.exit(130)


def start_stage(name: str, description: str | None, argv: list[str] | None,
                add_arguments: Callable[[argparse.ArgumentParser], Any] | None = None,
                ) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Common start of `python -m stages.<name>`: parse `--params` (and extras), set up logging, load + validate.

    When `dist` asks for more than one process and this is not yet one of them, the stage re-executes itself on
    them through Accelerate's launcher and exits with their exit code (engine/launch.py)."""
    parser = argparse.ArgumentParser(prog=f"trainline stage {name}", description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_checked(args.params, data=name != "prepare")
    _refuse_stale_dvc_yaml(args.params, name)
    if name != "prepare":
        from engine.launch import launch, needs_launch

        if needs_launch(cfg):
            # Checked once here; each worker starts this stage again (and checks again, cheaply beside training).
            raise SystemExit(launch(name, list(sys.argv[1:] if argv is None else argv), cfg))
    return args, cfg


def _refuse_stale_dvc_yaml(params: str, name: str) -> None:
    """A dvc.yaml that does not list a file this stage reads through `_base_` would let DVC skip a rerun when that
    file changes, and a run reusing stale results is worse than none: refuse until `trainline dvc-params` ran."""
    from engine.config.dvc_stages import unlisted_includes
    from engine.errors import ConfigError

    problems = unlisted_includes(params, stage=name)
    if problems:
        raise ConfigError(problems)

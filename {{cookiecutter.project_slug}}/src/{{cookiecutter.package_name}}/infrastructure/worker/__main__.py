# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`python -m {{ cookiecutter.package_name }}.infrastructure.worker` (`just worker`): run a worker (loop.py) with
the project's `WorkerSettings` (tasks.py), named by its dotted path so this module imports no jobs."""

import argparse
import logging.config
import os

from arq.utils import import_string

from ...config import get_settings
from ...error_tracking import init_error_tracking
from ...logs import configure_logging
from ..settings import settings_or_exit
from .loop import create_worker, use_uvloop_if_installed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.infrastructure.worker",
        description="Run a worker (arq's, with a loop that starts queued jobs at once).",
    )
    parser.add_argument(
        "settings",
        nargs="?",
        default="{{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings",
        help="dotted path of the worker settings (default: %(default)s)",
    )
    parser.add_argument(
        "--queues",
        metavar="NAMES",
        help="the queues to serve, highest priority first, e.g. critical,default "
        "(sets WORKER_QUEUES; default: every queue of QUEUES)",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--custom-log-dict", metavar="PATH", help="dotted path of a logging dictConfig, as arq's"
    )
    args = parser.parse_args(argv)
    if args.queues is not None:
        # Read, and checked against QUEUES, with the other settings.
        os.environ["WORKER_QUEUES"] = args.queues
    settings = settings_or_exit(get_settings)
    configure_logging(settings.log_level, settings.log_format, verbose=args.verbose)
    if args.custom_log_dict:  # on top, as the arq command applies it
        logging.config.dictConfig(import_string(args.custom_log_dict))
    init_error_tracking()  # before the worker exists: sentry-sdk wraps its job runs
    use_uvloop_if_installed()
    overrides = {"burst": True} if args.burst else {}
    create_worker(import_string(args.settings), **overrides).run()


if __name__ == "__main__":
    main()

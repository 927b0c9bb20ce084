"""``python -m core.readiness [--json]``: the production readiness checklist, from this environment.

Reads the settings from the environment as Lambda init does, configures logging and builds the runtime
as ``core.runtime.boot`` does, catching each failure; then runs every check for the enabled features and prints
✓ / ⚠ / ✗ with details and recommendations (``--json``: the same as JSON). The log lines init writes
are kept out of the report unless ``--logs`` sends them to stderr.
Exit status: 1 on any critical failure (✗), else 0 (warnings included); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
import sys

from core.readiness.base import ready
from core.readiness.checklist import prepare, run_checklist
from core.readiness.report import SYMBOLS, render_json, render_text, symbols_for


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m core.readiness", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON (the shape of GET /ready)")
    parser.add_argument("--logs", action="store_true", help="show the JSON log lines init writes, on stderr")
    args = parser.parse_args(argv)
    context = prepare(log_stream=sys.stderr if args.logs else io.StringIO())
    results = run_checklist(context)
    if args.json:
        print(render_json(results))
    else:
        settings = context.settings
        service = settings.powertools_service_name if settings else "haystack-serverless"
        where = "on Lambda" if context.on_lambda else "not on Lambda"
        title = f"Readiness of {service} ({where})"
        symbols = symbols_for(sys.stdout.encoding)
        if symbols is not SYMBOLS:  # details may carry any text too (paths, messages): never fail on it
            sys.stdout.reconfigure(errors="replace")
        print(render_text(results, title=title, symbols=symbols))
    return 0 if ready(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

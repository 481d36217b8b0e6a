"""Run the benchmarks: ``python -m tests.benchmarks [NAME ...] [--repeat N] [--json FILE]``.

NAME picks modules ``tests/benchmarks/bench_NAME.py`` (default: all). Each
module defines ``comparisons() -> list[Comparison]``. The database is chosen
like the tests' (``DJANGO_PERF_TEST_DB``, PostgreSQL by default, embedded
servers unless ``DJANGO_PERF_TEST_DATABASE_URL`` is set); a test database is
created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (of: {', '.join(available())})"
    )
    parser.add_argument("--repeat", type=int, help="samples per case (default: each benchmark's)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(available()))
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}"
        )

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    from tests.benchmarks.harness import Report, run_comparison
    from tests.support.servers import servers

    report = Report()
    db_state = setup_databases(verbosity=0, interactive=False)
    try:
        for name in args.names or available():
            module = importlib.import_module(f"tests.benchmarks.bench_{name}")
            for comparison in module.comparisons():
                if args.repeat:
                    comparison.repeat = args.repeat
                rows = run_comparison(comparison)
                report.rows.extend(rows)
                print(Report(rows).table(), flush=True)
    finally:
        teardown_databases(db_state, verbosity=0)
        servers.close()
    if args.json:
        args.json.write_text(json.dumps(report.as_dicts(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

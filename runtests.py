#!/usr/bin/env python
"""Run the whole test suite on PostgreSQL and then on SQLite, against embedded servers.

    python runtests.py                 # both databases
    python runtests.py --db sqlite     # one database
    python runtests.py -k settings -x  # any other arguments go to pytest

PostgreSQL and Redis are started from pip packages unless
DJANGO_PERF_TEST_DATABASE_URL / DJANGO_PERF_TEST_REDIS_URL name existing servers.
"""

from __future__ import annotations

import os
import subprocess
import sys

DATABASES = ("postgres", "sqlite")
NO_TESTS_COLLECTED = 5


def main(argv: list[str]) -> int:
    databases = list(DATABASES)
    if "--db" in argv:
        index = argv.index("--db")
        chosen = argv[index + 1 : index + 2]
        if not chosen or chosen[0] not in DATABASES:
            print(f"--db takes one of: {', '.join(DATABASES)}", file=sys.stderr)
            return 2
        databases = chosen
        del argv[index : index + 2]
    results = {}
    for database in databases:
        print(f"\n===== django-perf tests on {database} =====", flush=True)
        env = {**os.environ, "DJANGO_PERF_TEST_DB": database}
        results[database] = subprocess.call([sys.executable, "-m", "pytest", *argv], env=env)
    print("\n===== summary =====")
    for database, code in results.items():
        state = {0: "passed", NO_TESTS_COLLECTED: "no tests selected"}.get(code, f"FAILED ({code})")
        print(f"{database:>9}: {state}")
    ran = [code for code in results.values() if code != NO_TESTS_COLLECTED]
    return 0 if ran and all(code == 0 for code in ran) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``manage.py invalidate_cache``: drop cache entries by key, pattern, tag, model rows or all.

A thin layer over :func:`django_perf.cache.invalidation.invalidate`, so the
command and the admin page behave the same; its ValueError / LookupError
become a CommandError with the same message.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_perf.cache.invalidation import InvalidationReport, RegistrationError, invalidate
from django_perf.cache.patterns import matches_everything

PROGRESS_AFTER = 0.5  # seconds of scanning before progress is shown
PROGRESS_EVERY_TTY = 0.1
PROGRESS_EVERY_LOG = 2.0


class Progress:
    """A one-line progress bar on a terminal, or a line every few seconds elsewhere."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, tier: str, scanned: int, total: int | None, matched: int) -> None:
        now = time.monotonic()
        if now - self.started < PROGRESS_AFTER:
            return
        if now - self.last < (PROGRESS_EVERY_TTY if self.tty else PROGRESS_EVERY_LOG):
            return
        self.last = now
        if total:
            done = min(scanned / total, 1.0)
            bar = "#" * int(done * 30)
            text = f"{tier}: [{bar:<30}] {done:4.0%} scanned {scanned:,} of {total:,}"
        else:
            text = f"{tier}: scanned {scanned:,}"
        text += f", matched {matched:,}"
        if self.tty:
            self.stream.write(f"\r{text:<90}", ending="")
            self.stream.flush()
        else:
            self.stream.write(text)
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            self.stream.write("")


class Command(BaseCommand):
    help = (
        "Invalidate cache entries by key, glob pattern, tag, model rows, or all of them, in "
        "every tier (or the tiers named with --tier), and tell every server process to drop "
        "its in-memory copies. Prints how many entries each tier dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_argument_group("what to invalidate (at least one)")
        what.add_argument(
            "--key", action="append", default=[], metavar="KEY", help="a cache key (repeatable)"
        )
        what.add_argument(
            "--pattern",
            action="append",
            default=[],
            metavar="GLOB",
            help="keys matching a glob such as 'article:*' (repeatable; Redis glob syntax)",
        )
        what.add_argument(
            "--tag", action="append", default=[], metavar="TAG", help="a tag (repeatable)"
        )
        what.add_argument(
            "--model",
            metavar="APP_LABEL.MODEL",
            help="what the model's registrations name, for the rows given with --pk (or all rows)",
        )
        what.add_argument(
            "--pk", nargs="+", action="extend", default=[], metavar="PK", help="rows of --model"
        )
        what.add_argument(
            "--all", action="store_true", dest="everything", help="every entry of the cache"
        )
        parser.add_argument("--alias", default="default", help="the cache alias (default)")
        parser.add_argument(
            "--tier",
            action="append",
            default=[],
            metavar="KIND",
            help="only this tier: memory, redis or database (repeatable; default: every tier)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be dropped; change nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--yes",
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation (needed for --all and match-everything patterns)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keys, patterns, tags = options["key"], options["pattern"], options["tag"]
        model, pks, everything = options["model"], options["pk"], options["everything"]
        tiers = options["tier"] or None
        dry_run = options["dry_run"]
        if pks and not model:
            raise CommandError(
                "--pk needs --model: e.g. --model blog.Article --pk 1 2 (or --key for raw keys)."
            )
        if not (keys or patterns or tags or model or everything):
            raise CommandError(
                "Nothing to invalidate. Give --key KEY, --pattern GLOB, --tag TAG, "
                "--model app_label.Model [--pk PK ...] or --all (add --dry-run to count first)."
            )
        if everything and (keys or patterns or tags or model):
            raise CommandError("--all already drops every entry; give it alone.")
        if tags and tiers:
            raise CommandError(
                "Tags are invalidated in every tier at once; leave --tier out with --tag."
            )
        self._confirm(options, patterns, everything, dry_run)
        progress = Progress(self.stderr)
        try:
            report = invalidate(
                keys=keys,
                patterns=patterns,
                tags=tags,
                model=model,
                pks=pks or None,
                everything=everything,
                alias=options["alias"],
                tiers=tiers,
                dry_run=dry_run,
                progress=progress,
            )
        except (ValueError, LookupError, RegistrationError) as error:
            raise CommandError(str(error)) from error
        finally:
            progress.done()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._print(report)
        if report.errors:
            failed = ", ".join(f"{tier} ({error})" for tier, error in report.errors.items())
            raise CommandError(
                f"Some tiers failed: {failed}. The other tiers were invalidated; run the "
                "command again once they are reachable."
            )

    def _confirm(
        self, options: dict[str, Any], patterns: list[str], everything: bool, dry_run: bool
    ) -> None:
        broad = [p for p in patterns if matches_everything(p)]
        if dry_run or not (everything or broad):
            return
        what = "--all" if everything else f"--pattern {broad[0]!r}"
        alias = options["alias"]
        if not options["interactive"]:
            return
        if not sys.stdin.isatty():
            raise CommandError(
                f"{what} drops every entry of the cache {alias!r}; add --yes (or --no-input) "
                "to confirm, or --dry-run to count them first."
            )
        # The question goes to stderr: stdout may be redirected (--json > file).
        self.stderr.write(
            f"{what} drops every entry of the cache {alias!r} in every process. "
            "Type 'yes' to continue: ",
            ending="",
        )
        self.stderr.flush()
        try:
            answer = sys.stdin.readline()
        except KeyboardInterrupt:
            answer = ""
        if answer.strip().lower() != "yes":  # "" is end of input (Ctrl-D)
            raise CommandError("Cancelled; nothing was invalidated.")

    def _print(self, report: InvalidationReport) -> None:
        verb = "Would drop" if report.dry_run else "Dropped"
        self.stdout.write(f"{verb} from the cache {report.alias!r}:")
        width = max((len(tier) for tier in report.per_tier), default=5)
        width = max(width, len("total"))
        for tier, count in report.per_tier.items():
            state = f"  FAILED: {report.errors[tier]}" if tier in report.errors else ""
            self.stdout.write(f"  {tier:<{width}}  {count:>9,}{state}")
        self.stdout.write(f"  {'total':<{width}}  {report.total:>9,}")
        if report.rows is not None:
            self.stdout.write(f"Rows read for the model's registrations: {report.rows:,}.")
        if report.missing_pks:
            missing = ", ".join(str(pk) for pk in report.missing_pks)
            self.stdout.write(
                f"Not found (deleted rows cannot name their keys; use --key): {missing}."
            )
        if report.tags:
            verb = "would get" if report.dry_run else "got"
            self.stdout.write(
                f"{report.tags} tag(s) {verb} a new generation: every entry cached under "
                "them is unreachable from now on and expires on its own."
            )
        if report.notified is not None:
            self.stdout.write(
                f"Other processes told to drop their in-memory copies: {report.notified}."
            )
        for note in report.notes:
            self.stdout.write(f"Note: {note}")

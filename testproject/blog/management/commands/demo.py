"""``manage.py demo``: migrate, seed the demo data, create an admin user, then serve the site.

Before serving it sends some real HTTP traffic through the site, so that the
admin's Performance page (/admin/django_perf/dashboard/) shows charts at once.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from testproject.blog.seed import seed
from testproject.blog.traffic import warm_up

PASSWORD_ENV = "DJANGO_PERF_DEMO_PASSWORD"
ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Set up the demo (migrate, seed data if the database is empty, create an admin user) "
        "and serve it on 127.0.0.1:8000."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-serve", action="store_true", help="Set everything up, but do not start a server."
        )
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="Where to serve (default 127.0.0.1:8000)."
        )
        parser.add_argument(
            "--no-traffic",
            action="store_true",
            help="Serve without sending the warm-up requests first.",
        )
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help=f"Give an existing admin user a new password (or ${PASSWORD_ENV}).",
        )

    def handle(
        self,
        *args: Any,
        no_serve: bool,
        addrport: str,
        reset_password: bool,
        no_traffic: bool = False,
        **options: Any,
    ) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        added = seed()
        if added:
            counts = ", ".join(f"{n} {table}" for table, n in added.items())
            self.stdout.write(f"Seeded demo data: {counts}.")
        else:
            self.stdout.write("Demo data already present; nothing added.")
        self._ensure_admin(reset_password)
        if no_serve:
            return
        if not no_traffic:
            statuses = warm_up()
            sent = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
            self.stdout.write(
                f"Sent {sum(statuses.values())} requests through the site ({sent}): the admin's "
                "Performance page (/admin/django_perf/dashboard/) has charts already."
            )
        self.stdout.write(self.style.SUCCESS(f"Serving on http://{addrport}/ (Ctrl-C to stop)."))
        call_command("runserver", addrport, use_reloader=False)

    def _ensure_admin(self, reset_password: bool) -> None:
        User = get_user_model()
        user = User.objects.filter(username=ADMIN_USERNAME).first()
        password = os.environ.get(PASSWORD_ENV)
        if user is not None and not (reset_password or password):
            self.stdout.write(
                f"Admin user {ADMIN_USERNAME!r} exists; its password is unchanged "
                f"(use --reset-password or set {PASSWORD_ENV} to set a new one)."
            )
            return
        password = password or secrets.token_urlsafe(12)
        if user is None:
            User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        shown = f"from ${PASSWORD_ENV}" if os.environ.get(PASSWORD_ENV) else password
        self.stdout.write(
            self.style.SUCCESS(f"Admin login: {ADMIN_USERNAME} / {shown}  (at /admin/)")
        )

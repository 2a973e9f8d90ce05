"""`manage.py demo_admin`: creates (or resets) the demo superuser and prints its login."""

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    """Ensures a superuser `admin` exists with a known password, with DEBUG on only."""

    help = (
        "Create or reset the demo admin user (DEMO_ADMIN_PASSWORD, default 'admin'). "
        "Refuses unless settings.DEBUG is on."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Creates or resets the user and prints the credentials; refuses without DEBUG."""
        # A superuser with a published password must never exist on a deployed site.
        if not settings.DEBUG:
            raise CommandError(
                "demo_admin creates a superuser with a known password, so it runs only with "
                "DEBUG on (local development, settings.dev). Create real accounts with "
                "`manage.py createsuperuser`."
            )
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: username {username!r}, password {password!r}")
        )

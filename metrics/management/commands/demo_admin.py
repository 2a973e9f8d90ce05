"""`manage.py demo_admin`: creates (or resets) the demo superuser and prints its login."""

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Ensures a superuser `admin` exists with a known password, for local demos only."""

    help = "Create or reset the demo admin user (DEMO_ADMIN_PASSWORD, default 'admin')."

    def handle(self, *args: Any, **options: Any) -> None:
        """Creates or resets the user and prints the credentials."""
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: username {username!r}, password {password!r}")
        )

"""
Who a connection is *now*: re-reads its session, so a logout, a password change or a lost
permission reaches sockets opened before it (checked every STREAMING["RECHECK_SECONDS"]).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import AnonymousUser

from streaming.registry import StreamNotFound, get_stream
from streaming.serve.middleware import SESSION_KEY, resolve_session

logger = logging.getLogger("streaming.serve.access")


def session_key(scope: Mapping[str, Any]) -> str | None:
    """
    Returns the key of the session the socket was opened with: set by
    streaming.serve.middleware, or by channels' SessionMiddleware when that one is used instead.
    """
    if SESSION_KEY in scope:
        return scope[SESSION_KEY]
    return getattr(scope.get("session"), "session_key", None)


def session_user(scope: Mapping[str, Any]) -> Any:
    """
    Returns the user the scope's session belongs to today, read afresh from the session
    store: anonymous once the session was deleted (logout) or its auth hash changed.
    """
    key = session_key(scope)
    if not key:
        # No session to re-read (e.g. a test scope): the user resolved at connect stands.
        return scope.get("user") or AnonymousUser()
    return resolve_session(key)[1]


def revoked_keys(user: Any, subscriptions: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Returns the (stream, key) pairs `user` may no longer subscribe to."""
    lost = []
    for stream_name, key in subscriptions:
        try:
            allowed = get_stream(stream_name).permission(user, key)
        except StreamNotFound:
            allowed = False
        if not allowed:
            lost.append((stream_name, key))
    return lost


def recheck_many(
    work: Iterable[tuple[Mapping[str, Any], list[tuple[str, str]]]],
) -> list[tuple[Any, list[tuple[str, str]]]]:
    """
    Returns, for each (scope, subscriptions), the scope's current user and the subscriptions
    it lost. Each session is read once and each (user, key) permission run once.
    """
    users: dict[str, Any] = {}
    allowed: dict[tuple[Any, str, str], bool] = {}
    results = []
    for scope, subscriptions in work:
        key = session_key(scope)
        if key:
            if key not in users:
                users[key] = session_user(scope)
            user = users[key]
        else:
            user = session_user(scope)
        # Permissions depend on who the user is, not on which socket asks.
        who = user.pk if user.is_authenticated else None
        lost = []
        for stream_name, key in subscriptions:
            if (who, stream_name, key) not in allowed:
                allowed[(who, stream_name, key)] = not revoked_keys(user, [(stream_name, key)])
            if not allowed[(who, stream_name, key)]:
                lost.append((stream_name, key))
        results.append((user, lost))
    return results

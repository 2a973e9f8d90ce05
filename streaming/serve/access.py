"""
Who a connection is *now*: re-reads its session, so a logout, a password change or a lost
permission reaches sockets opened before it (checked every STREAMING["RECHECK_SECONDS"]).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
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


def who(user: Any) -> Any:
    """Returns what permissions depend on: the user's primary key, None when anonymous."""
    return user.pk if user.is_authenticated else None


def current_users(scopes: Iterable[Mapping[str, Any]], sessions: dict[str, Any]) -> list[Any]:
    """
    Returns each scope's current user. `sessions` maps session keys already read in this
    pass to their user: each session is read once, however many sockets share it.
    """
    users = []
    for scope in scopes:
        key = session_key(scope)
        if not key:
            users.append(session_user(scope))
            continue
        if key not in sessions:
            sessions[key] = session_user(scope)
        users.append(sessions[key])
    return users


def allowed_keys(work: Iterable[tuple[Any, str, Sequence[str]]]) -> list[set[str]]:
    """
    Returns, for each (user, stream name, keys), the keys the user may still subscribe to,
    asked of the stream in one call (Stream.permissions); an unknown stream allows none.
    """
    out: list[set[str]] = []
    for user, stream_name, keys in work:
        try:
            stream = get_stream(stream_name)
        except StreamNotFound:
            out.append(set())
            continue
        out.append(stream.permissions(user, keys))
    return out

"""
Logout is POST-only with a CSRF token, in the admin and in the browsable API: a GET (a link,
an <img>, a prefetch) never ends a session (docs/security.md).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

pytestmark = pytest.mark.django_db

LOGOUTS = ["/admin/logout/", "/api-auth/logout/"]


def logged_in(*, is_staff: bool) -> Client:
    """Returns a CSRF-checking client with a real session, as a browser would have."""
    User.objects.create_user("alice", password="pw", is_staff=is_staff)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password="pw")
    return client


def has_session(client: Client) -> bool:
    """Returns whether the client's session still exists and is logged in."""
    key = client.cookies["sessionid"].value
    session = Session.objects.filter(session_key=key).first()
    return session is not None and "_auth_user_id" in session.get_decoded()


def csrf_token(client: Client, page: str) -> str:
    """Returns the CSRF token a page hands the browser."""
    assert client.get(page, HTTP_ACCEPT="text/html").status_code == 200
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize("url", LOGOUTS)
def test_get_never_logs_out(url):
    """Tests that a GET on a logout URL is refused (405) and the session survives it."""
    client = logged_in(is_staff=True)
    response = client.get(url)
    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"
    assert has_session(client)
    assert client.get("/admin/").status_code == 200


def test_admin_logout_get_redirects_non_staff_without_logging_out():
    """Tests that the admin's 302 for a non-staff visitor on /admin/logout/ keeps the session."""
    client = logged_in(is_staff=False)
    response = client.get("/admin/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert has_session(client)


@pytest.mark.parametrize("url", LOGOUTS)
def test_post_without_csrf_token_does_not_log_out(url):
    """Tests that a cross-site POST (no CSRF token) to a logout URL is 403 and changes nothing."""
    client = logged_in(is_staff=True)
    assert client.post(url).status_code == 403
    assert has_session(client)


@pytest.mark.parametrize(("url", "page"), [(LOGOUTS[0], "/admin/"), (LOGOUTS[1], "/api/")])
def test_post_with_csrf_token_logs_out(url, page):
    """Tests that the POST the pages' logout forms send ends the session."""
    client = logged_in(is_staff=True)
    token = csrf_token(client, page)
    response = client.post(url, {"csrfmiddlewaretoken": token})
    assert response.status_code in (200, 302)
    assert not has_session(client)
    assert client.get("/admin/").status_code == 302


def test_pages_log_out_with_a_post_form_only():
    """Tests that the admin and the browsable API offer logout as a POST form, never a link."""
    client = logged_in(is_staff=True)
    for page in ("/admin/", "/api/", "/"):
        html = client.get(page, HTTP_ACCEPT="text/html").content.decode()
        assert 'href="/admin/logout/"' not in html, page
        assert 'href="/api-auth/logout/' not in html, page
    assert '<form id="logout-form" method="post" action="/admin/logout/">' in (
        client.get("/admin/").content.decode()
    )
    assert '<form id="logoutForm" method="post" action="/api-auth/logout/' in (
        client.get("/api/", HTTP_ACCEPT="text/html").content.decode()
    )

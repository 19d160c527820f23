"""OAuth2 password flow and bearer-token checks over HTTP."""

from __future__ import annotations

import datetime as dt

import jwt

from repository.config import get_settings
from tests.api.helpers import API, assert_problem
from tests.conftest import PASSWORD

TOKEN = f"{API}/auth/token"
ME = f"{API}/customers"  # any endpoint that needs a caller


def test_password_flow_gives_a_bearer_token_that_works(client, make_user) -> None:
    make_user("bob", "helpdesk")
    response = client.post(TOKEN, data={"username": "bob", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"]
    used = client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert used.status_code == 200


def test_wrong_password_is_401_problem_with_www_authenticate(client, make_user) -> None:
    make_user("bob", "helpdesk")
    response = client.post(TOKEN, data={"username": "bob", "password": "not-the-password"})
    assert_problem(response, 401, "password")
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert "access_token" not in response.json()


def test_unknown_user_is_401_like_a_wrong_password(client) -> None:
    response = client.post(TOKEN, data={"username": "nobody", "password": PASSWORD})
    assert_problem(response, 401, "password")


def test_token_request_without_password_is_422_naming_the_field(client) -> None:
    response = client.post(TOKEN, data={"username": "bob"})
    body = assert_problem(response, 422, "password")
    assert [e["field"] for e in body["errors"]] == ["password"]


def test_request_without_token_is_401(client) -> None:
    response = client.get(ME)
    assert_problem(response, 401, "token")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_garbage_token_is_401(client) -> None:
    response = client.get(ME, headers={"Authorization": "Bearer not.a.token"})
    assert_problem(response, 401, "not valid")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def _signed(claims: dict) -> str:
    secret = get_settings().resolved_token_secret_path.read_text().strip().encode()
    return jwt.encode(claims, secret, algorithm="HS256")


def test_expired_token_is_401_saying_it_expired(client, make_user) -> None:
    user = make_user("bob", "helpdesk").user
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    token = _signed({"sub": user.id, "exp": past, "iat": past - dt.timedelta(hours=1)})
    response = client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "expired")


def test_same_claims_unexpired_are_accepted(client, make_user) -> None:
    """The pair of the expiry test: a hand-made token is good until it expires."""
    user = make_user("bob", "helpdesk").user
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    token = _signed({"sub": user.id, "exp": future})
    assert client.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_token_signed_with_another_secret_is_401(client, make_user) -> None:
    user = make_user("bob", "helpdesk").user
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    token = jwt.encode({"sub": user.id, "exp": future}, b"x" * 32, algorithm="HS256")
    assert_problem(client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401)


def test_token_issued_with_negative_lifetime_is_rejected(client, make_user, monkeypatch) -> None:
    make_user("bob", "helpdesk")
    monkeypatch.setenv("POSTROOM_TOKEN_LIFETIME_MINUTES", "-1")
    get_settings.cache_clear()
    response = client.post(TOKEN, data={"username": "bob", "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert_problem(client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401, "expired")


def test_login_and_failed_login_are_audited(client, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    make_user("bob", "helpdesk")
    client.post(TOKEN, data={"username": "bob", "password": "wrong-password"})
    client.post(TOKEN, data={"username": "bob", "password": PASSWORD})
    rows = client.get(f"{API}/audit", params={"actor": "bob"}, headers=auditor.headers).json()["items"]
    assert [r["action"] for r in rows] == ["auth.login_failed", "auth.login"]
    assert all(PASSWORD not in str(r["details"]) for r in rows)

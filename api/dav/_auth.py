"""HTTP Basic authentication for WebDAV against Postroom's users.

Verifying an argon2 hash costs about 50 ms and a WebDAV client authenticates every request, so a successful
credential is remembered for a short time under a salted SHA-256 of the credential (never the password itself);
the user is still loaded for each request, so a disabled user is refused at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from collections import OrderedDict

from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.http_authenticator import HTTPAuthenticator

from api.dav._common import USER_KEY
from repository import identity
from repository.db import transaction
from repository.models import User

REALM = "Postroom"
CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
_SALT = secrets.token_bytes(16)


class CredentialCache:
    """Successful credentials (as salted hashes) mapped to a user id, each for CACHE_SECONDS."""

    def __init__(self, ttl: float = CACHE_SECONDS, size: int = CACHE_SIZE) -> None:
        self._ttl, self._size = ttl, size
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(user_name: str, password: str) -> bytes:
        """The cache key of a credential: a salted hash of it, so nothing in memory reveals the password."""
        return hashlib.sha256(_SALT + user_name.encode() + b"\0" + password.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> str | None:
        """The user id remembered for this credential, if still fresh."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[1] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return hit[0]

    def put(self, key: bytes, user_id: str) -> None:
        """Remember a credential that just verified."""
        with self._lock:
            self._entries[key] = (user_id, time.monotonic() + self._ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._entries.clear()


credentials = CredentialCache()


class PostroomDomainController(BaseDomainController):
    """Basic authentication against the repository's users; every request must authenticate."""

    def get_domain_realm(self, path_info, environ):  # noqa: ANN001, ANN201
        return REALM

    def require_authentication(self, realm, environ):  # noqa: ANN001, ANN201
        return True

    def supports_http_digest_auth(self) -> bool:
        return False

    def basic_auth_user(self, realm, user_name, password, environ):  # noqa: ANN001, ANN201
        key = CredentialCache.key(user_name, password)
        user_id = credentials.get(key)
        if user_id is not None:
            with transaction(readonly=True) as session:
                user = session.get(User, user_id)
                if user is not None and user.active and user.username == user_name:
                    session.expunge(user)
                    environ[USER_KEY] = user
                    return True
        with transaction(readonly=True) as session:
            user, ok = identity.check_credentials(session, username=user_name[:150], password=password)
            if user is not None:
                session.expunge(user)
        with transaction() as session:
            identity.record_login(session, username=user_name, user=user, succeeded=ok, password=password)
        if not ok:
            return False
        credentials.put(key, user.id)
        environ[USER_KEY] = user
        return True


class BasicAuthenticator(HTTPAuthenticator):
    """wsgidav's authenticator, answering a malformed Basic header with 401 instead of an internal error."""

    def handle_basic_auth_request(self, environ, start_response):  # noqa: ANN001, ANN201
        header = environ.get("HTTP_AUTHORIZATION", "")
        try:
            decoded = base64.b64decode(header[len("Basic "):].strip(), validate=True).decode("utf-8")
            user_name, password = decoded.split(":", 1)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return self.send_basic_auth_response(environ, start_response)
        if not user_name.isprintable() or not password.isprintable() or len(password) > 1024:
            return self.send_basic_auth_response(environ, start_response)
        if self.domain_controller.basic_auth_user(REALM, user_name, password, environ):
            environ["wsgidav.auth.realm"] = REALM
            environ["wsgidav.auth.user_name"] = user_name
            return self.next_app(environ, start_response)
        return self.send_basic_auth_response(environ, start_response)

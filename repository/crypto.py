"""Encryption at rest: a key ring of key-encryption keys, per-document data keys, and segmented AES-256-GCM.

Content is encrypted in fixed-size segments (the STREAM construction: a per-blob subkey from HKDF, a nonce of
random prefix + segment counter + last-segment flag), so it can be written and read as a stream, a byte range
can be decrypted without the segments before it, and truncation or reordering fails authentication.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from repository.errors import IntegrityError

MAGIC = b"PRM1"
SEGMENT = 256 * 1024
TAG = 16
_SALT = 16
_PREFIX = 7
HEADER = len(MAGIC) + 4 + _SALT + _PREFIX


class KeyRing:
    """Key-encryption keys in a JSON file kept apart from the data (mode 0600); one key is active."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self._create()
        self._load()

    def _create(self) -> None:
        # First writer wins: a complete ring is linked into place, never replaced, so concurrent first uses
        # (threads, or serve and worker starting together) share one key instead of overwriting each other's.
        kid = f"kek-1-{secrets.token_hex(4)}"
        data = {"active": kid, "keys": {kid: base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keyring-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)

    def _load(self) -> None:
        stamp = self.path.stat().st_mtime_ns
        data = json.loads(self.path.read_text())
        self.active_id: str = data["active"]
        self._keys = {kid: base64.b64decode(v) for kid, v in data["keys"].items()}
        self._stamp = stamp

    def reload(self) -> None:
        """Read the ring again if another process changed it."""
        self._refresh()

    def _refresh(self) -> None:
        # Another process (`postroom keys rotate`) may have added a key: a running server picks it up.
        if self.path.stat().st_mtime_ns != self._stamp:
            self._load()

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keyring-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def add_key(self) -> str:
        """Generate a new key-encryption key, make it active and save the ring; returns its id."""
        # An exclusive lock beside the ring keeps two concurrent rotations from losing each other's key.
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text())
            kid = f"kek-{len(data['keys']) + 1}-{secrets.token_hex(4)}"
            data["keys"][kid] = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
            data["active"] = kid
            self._write(data)
        self._load()
        return kid

    def remove_key(self, kid: str) -> None:
        """Delete a key-encryption key from the ring for good (never the active one): whatever it still wraps,
        in the database or in any backup of it, can no longer be unwrapped."""
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text())
            if kid == data["active"]:
                raise ValueError(f"{kid} is the active key")
            if data["keys"].pop(kid, None) is None:
                raise KeyError(kid)
            self._write(data)
        self._load()

    def key_ids(self) -> list[str]:
        """Ids of every key in the ring."""
        return list(self._keys)

    def wrap(self, data_key: bytes, *, context: str) -> tuple[str, bytes]:
        """Encrypt a data key under the active key, bound to context; returns (key id, wrapped)."""
        self._refresh()
        nonce = os.urandom(12)
        return self.active_id, nonce + AESGCM(self._keys[self.active_id]).encrypt(nonce, data_key, context.encode())

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        """Decrypt a wrapped data key; IntegrityError when the key is unknown (or retired) or the wrap was
        altered."""
        self._refresh()  # a key retired by another process is gone here too
        kek = self._keys.get(kek_id)
        if kek is None:
            raise IntegrityError(f"key-encryption key {kek_id} is not in the key ring")
        try:
            return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], context.encode())
        except InvalidTag as exc:
            raise IntegrityError(f"wrapped data key for {context} failed authentication") from exc


def new_data_key() -> bytes:
    """A fresh 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


@dataclass(frozen=True)
class _Header:
    segment: int
    salt: bytes
    prefix: bytes

    def pack(self) -> bytes:
        return MAGIC + struct.pack(">I", self.segment) + self.salt + self.prefix

    @classmethod
    def unpack(cls, raw: bytes) -> _Header:
        if len(raw) != HEADER or raw[:4] != MAGIC:
            raise IntegrityError("stored content has no valid encryption header")
        (segment,) = struct.unpack(">I", raw[4:8])
        return cls(segment, raw[8 : 8 + _SALT], raw[8 + _SALT :])

    def cipher(self, data_key: bytes) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=self.salt, info=b"postroom blob v1")
        return AESGCM(hkdf.derive(data_key))

    def nonce(self, index: int, last: bool) -> bytes:
        return self.prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


class SegmentEncryptor:
    """Push-style encryption: `update()` returns the ciphertext of every segment completed so far."""

    def __init__(self, data_key: bytes, segment: int = SEGMENT) -> None:
        self._header = _Header(segment, os.urandom(_SALT), os.urandom(_PREFIX))
        self.header = self._header.pack()
        self._aead = self._header.cipher(data_key)
        self._segment = segment
        self._buf = bytearray()
        self._index = 0

    def _seal(self, plain: bytes | bytearray | memoryview, last: bool) -> bytes:
        out = self._aead.encrypt(self._header.nonce(self._index, last), plain, self.header)
        self._index += 1
        return out

    def update(self, chunk: bytes) -> list[bytes]:
        """Add plaintext; returns sealed segments (at least one byte is held back for the final segment).

        Whole segments are sealed straight from the caller's buffer; only partial ones are copied.
        """
        out: list[bytes] = []
        view, pos, seg, buf = memoryview(chunk), 0, self._segment, self._buf
        if buf:
            take = min(seg - len(buf), len(view))
            buf += view[:take]
            pos = take
            if len(buf) == seg and pos < len(view):
                out.append(self._seal(buf, False))
                buf.clear()
        if not buf:
            while len(view) - pos > seg:
                out.append(self._seal(view[pos : pos + seg], False))
                pos += seg
            buf += view[pos:]
        return out

    def finalize(self) -> bytes:
        """Seal the final segment (possibly empty)."""
        return self._seal(bytes(self._buf), True)


def encrypt_stream(data_key: bytes, chunks: Iterable[bytes], segment: int = SEGMENT) -> Iterator[bytes]:
    """Encrypt a stream of plaintext chunks; yields the header, then one ciphertext segment at a time."""
    enc = SegmentEncryptor(data_key, segment)
    yield enc.header
    for chunk in chunks:
        yield from enc.update(chunk)
    yield enc.finalize()


def encrypted_size(plain_size: int, segment: int = SEGMENT) -> int:
    """The stored size of plaintext of the given size."""
    segments = max(1, -(-plain_size // segment))
    return HEADER + plain_size + segments * TAG


def decrypt_range(
    data_key: bytes,
    read: Callable[[int, int | None], Iterator[bytes]],
    plain_size: int,
    start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """Decrypt plaintext bytes [start, end) reading only the segments that hold them.

    `read(offset, length)` streams stored bytes; every segment read is authenticated before any of it is yielded.
    """
    end = plain_size if end is None else min(end, plain_size)
    header = _Header.unpack(b"".join(read(0, HEADER)))
    aead = header.cipher(data_key)
    aad = header.pack()
    seg = header.segment
    last_index = max(0, -(-plain_size // seg) - 1)
    first = min(start // seg, last_index)  # a range starting at the end still reads (and checks) the last segment
    final = (end - 1) // seg if end > start else first
    stored_seg = seg + TAG
    offset = HEADER + first * stored_seg
    length = (final - first + 1) * stored_seg
    index = first
    buf = bytearray()

    def _open(raw: bytes, i: int) -> bytes:
        try:
            return aead.decrypt(header.nonce(i, i == last_index), raw, aad)
        except InvalidTag as exc:
            raise IntegrityError(f"stored content failed authentication at segment {i}") from exc

    for chunk in read(offset, length):
        buf += chunk
        while len(buf) >= stored_seg:
            plain = _open(bytes(buf[:stored_seg]), index)
            del buf[:stored_seg]
            yield from _slice(plain, index * seg, start, end)
            index += 1
    if index <= final:
        plain = _open(bytes(buf), index)
        yield from _slice(plain, index * seg, start, end)
        index += 1
    if index <= final:
        raise IntegrityError("stored content is truncated")


def _slice(plain: bytes, seg_start: int, start: int, end: int) -> Iterator[bytes]:
    lo = max(0, start - seg_start)
    hi = min(len(plain), end - seg_start)
    if hi > lo:
        yield plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain

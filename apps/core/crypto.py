"""AES-256-GCM envelope for secrets at rest (card numbers in the vault, PSP credentials).

Keys come from the environment: DATA_ENCRYPTION_KEYS="kid1:<base64 32 bytes>,kid2:…" and
DATA_ENCRYPTION_ACTIVE_KEY="kid2". Each ciphertext records its key id, so keys can be rotated:
new data uses the active key, old data stays readable until re-encrypted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

NONCE_BYTES = 12


@dataclass(frozen=True)
class Ciphertext:
    key_id: str
    blob: bytes  # nonce || ciphertext+tag


@lru_cache(maxsize=1)
def _keyring() -> dict[str, bytes]:
    ring = {}
    for item in settings.DATA_ENCRYPTION_KEYS.split(","):
        key_id, _, encoded = item.strip().partition(":")
        key = base64.b64decode(encoded)
        if len(key) != 32:
            raise ValueError(f"encryption key {key_id!r} must be 32 bytes (AES-256)")
        ring[key_id] = key
    if settings.DATA_ENCRYPTION_ACTIVE_KEY not in ring:
        raise ValueError("DATA_ENCRYPTION_ACTIVE_KEY is not in DATA_ENCRYPTION_KEYS")
    return ring


def reset_keyring_cache() -> None:
    _keyring.cache_clear()


def encrypt(plaintext: bytes, *, associated_data: bytes = b"") -> Ciphertext:
    key_id = settings.DATA_ENCRYPTION_ACTIVE_KEY
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_keyring()[key_id]).encrypt(nonce, plaintext, associated_data or None)
    return Ciphertext(key_id=key_id, blob=nonce + sealed)


def decrypt(ciphertext: Ciphertext, *, associated_data: bytes = b"") -> bytes:
    key = _keyring()[ciphertext.key_id]
    nonce, sealed = ciphertext.blob[:NONCE_BYTES], ciphertext.blob[NONCE_BYTES:]
    return AESGCM(key).decrypt(nonce, sealed, associated_data or None)


def keyed_fingerprint(value: str, *, purpose: str) -> str:
    """A stable HMAC of a secret (e.g. a card number) that reveals nothing without the key,
    so equal cards can be matched without storing them in clear."""
    # its own key, not the encryption key: fingerprints must survive encryption-key rotation
    key = hashlib.sha256(b"fingerprint:" + settings.FINGERPRINT_KEY.encode()).digest()
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()

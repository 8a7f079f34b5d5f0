"""Raw report files: written once as received, named by their SHA-256, never rewritten."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings


def storage_dir() -> Path:
    path = Path(settings.RECONCILIATION_STORAGE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_raw(*, connector_public_id: str, chunks: Iterable[bytes]) -> tuple[str, str, int]:
    """Streams the chunks to disk while hashing them; returns (path, sha256, size). The same
    bytes always land at the same path, so storing a file twice changes nothing."""
    directory = storage_dir() / connector_public_id
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        final = directory / f"{sha}.csv"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(final), sha, size


def raw_lines(path: str) -> Iterable[bytes]:
    """The stored file line by line (newlines kept), buffered: never read whole."""
    with open(path, "rb", buffering=1 << 20) as handle:
        yield from handle

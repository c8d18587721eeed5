"""Where a store's tables live: a local folder, or a prefix on object storage.

``[project] store`` is a path (relative to the project), a ``file://`` URI, or an object-storage
URI (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix``, and the other
schemes ``deltalake`` reads: ``s3a``, ``gcs``, ``abfs``, ``abfss``, ``adl``, ``azure``). Object
storage is reached with the options of ``[storage.options]`` in ``backfiller.toml`` and, as
``deltalake`` does itself, the process environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["OBJECT_STORE_SCHEMES", "is_uri", "local_path_of", "object_store_uri"]

#: the URI schemes of object storage that ``deltalake`` (object_store) reads and writes
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl"})


def _scheme(text: str) -> str:
    head, sep, _ = text.partition("://")
    return head.lower() if sep and head.isalnum() else ""


def is_uri(text: str) -> bool:
    """Whether ``text`` is a ``file://`` or object-storage URI (not a plain path)."""
    return _scheme(text) in OBJECT_STORE_SCHEMES | {"file"}


def object_store_uri(text: str) -> str | None:
    """``text`` without a trailing slash if it names object storage; ``None`` otherwise."""
    if _scheme(text) not in OBJECT_STORE_SCHEMES:
        return None
    return text.rstrip("/")


def local_path_of(uri: str) -> Path:
    """The local path a ``file://`` URI names (``file:///abs/path`` or ``file://localhost/…``)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError(f"not a local file URI: {uri!r}")
    return Path(unquote(parts.path))

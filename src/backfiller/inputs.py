"""The input files a manifest declares, wherever they are: a path relative to the project
folder, a ``file://`` URI, or an object-storage URI (``s3://bucket/key``, ``gs://…``,
``az://…``) reached with the project's ``[storage.options]`` and the environment, as the
Delta store is.

Their checksums are verified before a step computes (:func:`backfiller.manifests.verify_inputs`),
on whichever machine computes it; a compute function opens them with
:meth:`backfiller.AssetContext.open_input`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

__all__ = ["input_sha256", "open_input"]

_CHUNK = 1 << 20


def open_input(
    path: str, *, root: Path, storage_options: Mapping[str, str] | None = None
) -> IO[bytes]:
    """The declared input file ``path`` opened for reading bytes (``FileNotFoundError`` if it
    is not there): relative to ``root``, or a ``file://`` / object-storage URI."""
    if "://" not in path:
        return Path(root, *PurePosixPath(path).parts).open("rb")
    from backfiller.store.location import is_uri, local_path_of

    if not is_uri(path):
        raise ValueError(f"{path!r} is neither a relative path nor a URI backfiller reads")
    if path.lower().startswith("file://"):
        return local_path_of(path).open("rb")
    import pyarrow.fs as pafs
    from deltalake.fs import DeltaStorageHandler

    folder, _, name = path.rpartition("/")
    handler = DeltaStorageHandler(folder, dict(storage_options or {}) or None)
    stream: Any = pafs.PyFileSystem(handler).open_input_stream(name)
    return cast(IO[bytes], stream)


def input_sha256(
    path: str, *, root: Path, storage_options: Mapping[str, str] | None = None
) -> str | None:
    """The hex sha256 of the input file's bytes; ``None`` when it is not there."""
    digest = hashlib.sha256()
    try:
        with open_input(path, root=root, storage_options=storage_options) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return digest.hexdigest()

"""The input files a manifest declares, wherever they are: a path relative to the project
folder, a ``file://`` URI, or an object-storage URI (``s3://bucket/key``, ``gs://…``,
``az://…``) reached with the project's ``[storage.options]`` and the environment, as the
Delta store is.

Their checksums are verified before a step computes (:func:`backfiller.manifests.verify_inputs`),
on whichever machine computes it; a compute function opens them with
:meth:`backfiller.AssetContext.open_input`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pyarrow.fs as pafs

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
    folder, _, name = path.rpartition("/")
    options = tuple(sorted((storage_options or {}).items()))
    stream: Any = _folder_filesystem(folder, options).open_input_stream(name)
    return cast(IO[bytes], stream)


@functools.lru_cache(maxsize=32)
def _folder_filesystem(folder: str, options: tuple[tuple[str, str], ...]) -> pafs.FileSystem:
    """A file system on the object-storage ``folder``, built once per folder and options: a
    manifest's input files share a few folders, and each handler is a client of its own."""
    import pyarrow.fs as pafs
    from deltalake.fs import DeltaStorageHandler

    return pafs.PyFileSystem(DeltaStorageHandler(folder, dict(options) or None))


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

"""Where backfiller's own files are: a local path, or a key on object storage.

``[project] report_dir`` (partition reports, plans, evidence, ``holds.json``) and
``[project] manifests`` are a path relative to the project, a ``file://`` URI (a local folder),
or an object-storage URI (``s3://bucket/prefix``, ``gs://…``, ``az://…``) reached as the Delta
store is: through ``deltalake``'s storage handler, with ``[storage.options]`` and the
environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``).

A file on object storage is an :class:`ObjectPath`: the few ``pathlib.Path`` methods the
report code uses (``/``, ``parent``, ``name``, ``read_bytes``, ``is_file``, ``iterdir``…), so
code written for a local folder reads and writes either. It has no ``__fspath__``: handing
one to ``open`` or ``os`` fails at once, never writes a local file named ``s3:``. A write is
one object PUT (or a multipart upload completed at once), which readers see whole or not at
all — the object store's counterpart of writing a temporary file and renaming it.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from backfiller.errors import BadInputError
from backfiller.store.location import is_uri, local_path_of, object_store_uri

__all__ = ["Location", "ObjectPath", "StorageUnreachableError", "files_in", "location_of"]

_handlers: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_handlers_lock = threading.Lock()


class StorageUnreachableError(BadInputError):
    """A configured location on object storage cannot be read or written (exit 2)."""


@dataclass(frozen=True)
class ObjectPath:
    """A file or folder ``key`` in the bucket (or container) ``bucket_uri``
    (``s3://bucket``), reached with ``options``; ``setting`` names the configuration it came
    from, for messages."""

    bucket_uri: str
    key: str
    #: never shown (``repr``): the options may hold credentials
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    setting: str = "a location on object storage"

    @classmethod
    def parse(
        cls, uri: str, options: Mapping[str, str] | None = None, *, setting: str = ""
    ) -> ObjectPath:
        """``uri`` (``scheme://bucket/key``) as an object path; ``ValueError`` if it names no
        bucket."""
        text = object_store_uri(uri)
        if text is None:
            raise ValueError(f"{uri!r} is not an object-storage URI")
        scheme, _, rest = text.partition("://")
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} names no bucket")
        key = PurePosixPath(key).as_posix() if key else ""
        return cls(
            f"{scheme.lower()}://{bucket}",
            "" if key == "." else key,
            tuple(sorted((options or {}).items())),
            setting or "a location on object storage",
        )

    # --- the path -----------------------------------------------------------------------

    def __str__(self) -> str:
        return f"{self.bucket_uri}/{self.key}" if self.key else self.bucket_uri

    def as_posix(self) -> str:
        return str(self)

    def as_uri(self) -> str:
        return str(self)

    def joinpath(self, *parts: str) -> ObjectPath:
        key = PurePosixPath(self.key or "/").joinpath(*parts).as_posix().lstrip("/")
        if ".." in key.split("/"):
            raise ValueError(f"{key!r} leaves {self}")
        return ObjectPath(self.bucket_uri, key, self.options, self.setting)

    def __truediv__(self, part: str) -> ObjectPath:
        return self.joinpath(part)

    @property
    def parent(self) -> ObjectPath:
        parent = PurePosixPath(self.key).parent.as_posix()
        return ObjectPath(
            self.bucket_uri, "" if parent == "." else parent, self.options, self.setting
        )

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    def with_suffix(self, suffix: str) -> ObjectPath:
        key = PurePosixPath(self.key).with_suffix(suffix).as_posix()
        return ObjectPath(self.bucket_uri, key, self.options, self.setting)

    def resolve(self) -> ObjectPath:
        return self

    def is_relative_to(self, other: ObjectPath | Path) -> bool:
        if not isinstance(other, ObjectPath) or other.bucket_uri != self.bucket_uri:
            return False
        return not other.key or self.key == other.key or self.key.startswith(other.key + "/")

    # --- the bytes ----------------------------------------------------------------------

    def _handler(self) -> Any:
        with _handlers_lock:
            key = (self.bucket_uri, self.options)
            found = _handlers.get(key)
            if found is None:
                from deltalake.fs import DeltaStorageHandler

                # the raw handler: pyarrow's wrapper hands its output streams Arrow buffers,
                # which deltalake's streams refuse
                found = _handlers[key] = DeltaStorageHandler(
                    self.bucket_uri, dict(self.options) or None
                )._handler
            return found

    def _unreachable(self, doing: str, exc: Exception) -> StorageUnreachableError:
        return StorageUnreachableError(
            f"Cannot {doing} {self} ({self.setting}): {_said(exc)}",
            hint=f"check {self.setting}, [storage.options] and the AWS_*/GOOGLE_*/AZURE_* "
            "variables, and that the bucket exists and is reachable from here",
        )

    def read_bytes(self) -> bytes:
        """The object's bytes (``FileNotFoundError`` when there is none)."""
        try:
            stream = self._handler().open_input_file(self.key)
            try:
                return bytes(stream.read())
            finally:
                stream.close()
        except FileNotFoundError:
            raise FileNotFoundError(f"no such object: {self}") from None
        except Exception as exc:
            raise self._unreachable("read", exc) from exc

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """Write the object in one PUT (replacing it): seen whole or not at all. A write that
        fails is an ``OSError``, as a full disk is: a run that cannot write its report or
        evidence stops, and ``resume`` finishes it."""
        try:
            stream = self._handler().open_output_stream(self.key, None)
            stream.write(bytes(data))
            stream.close()
        except Exception as exc:
            raise OSError(f"cannot write {self} ({self.setting}): {_said(exc)}") from exc
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        if not self.is_file():
            if missing_ok:
                return
            raise FileNotFoundError(f"no such object: {self}")
        try:
            self._handler().delete_file(self.key)
        except Exception as exc:
            raise OSError(f"cannot delete {self} ({self.setting}): {_said(exc)}") from exc

    def _type(self) -> str:
        import pyarrow.fs as pafs

        try:
            (info,) = self._handler().get_file_info([self.key])
        except Exception as exc:
            raise self._unreachable("read", exc) from exc
        if info.type == pafs.FileType.File:
            return "file"
        if info.type == pafs.FileType.Directory:
            return "folder"
        return ""

    def is_file(self) -> bool:
        return bool(self.key) and self._type() == "file"

    def is_dir(self) -> bool:
        """Whether any object lies under this prefix (object storage has no empty folders)."""
        return next(iter(self._listing()), None) is not None

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to make: a prefix exists once an object is written under it."""

    def _listing(self) -> list[Any]:
        try:
            return list(self._handler().get_file_info_selector(self.key, True, False))
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._unreachable("list", exc) from exc

    def iterdir(self) -> Iterator[ObjectPath]:
        """The objects and prefixes directly under this one."""
        for info in sorted(self._listing(), key=lambda i: str(i.path)):
            name = PurePosixPath(str(info.path)).name
            yield self / name

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """The objects directly under this prefix whose name matches ``pattern`` (no ``/``,
        no ``**``: the only globs the report code uses)."""
        if "/" in pattern:
            raise ValueError(f"only a name pattern is supported on object storage: {pattern!r}")
        for child in self.iterdir():
            if fnmatch.fnmatchcase(child.name, pattern):
                yield child

    def file_names(self) -> list[str]:
        """The names of the files (not prefixes) directly under this prefix."""
        import pyarrow.fs as pafs

        return [
            PurePosixPath(str(info.path)).name
            for info in self._listing()
            if info.type == pafs.FileType.File
        ]


_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def _said(exc: Exception) -> str:
    """The storage handler's error in one line: its first line and its root cause (the
    handler nests its causes over several lines, with terminal colours)."""
    lines = [_ESCAPES.sub("", line).strip().lstrip("↳").strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"


#: a file or folder of the project's own: local, or on object storage
Location = Path | ObjectPath


def location_of(
    value: str, *, root: Path, options: Mapping[str, str] | None = None, setting: str = ""
) -> Location:
    """``value`` as a location: an object-storage URI as an :class:`ObjectPath` (reached with
    ``options``), a ``file://`` URI as its local path, anything else relative to ``root``
    (or absolute). ``ValueError`` for a URI that names no bucket or a remote host."""
    if object_store_uri(value) is not None:
        return ObjectPath.parse(value, options, setting=setting)
    if is_uri(value):
        return local_path_of(value)
    return Path(root) / value


def files_in(folder: Location, pattern: str) -> list[Location]:
    """What lies directly in ``folder`` with a name matching ``pattern`` (on object storage:
    the objects), by name; nothing when there is no such folder."""
    found: list[Location] = []
    if isinstance(folder, Path):
        if folder.is_dir():
            found.extend(folder.glob(pattern))
    else:
        found.extend(folder / n for n in folder.file_names() if fnmatch.fnmatchcase(n, pattern))
    return sorted(found, key=str)

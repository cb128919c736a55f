"""Where a partner's dataset comes from: a directory on the server, or an uploaded zip, tar or
tar.gz archive, extracted into a private staging directory for the length of a `with` block.

Uploaded archives are untrusted. `validation/packaging/reader.py` reads package archives without
ever writing them to disk; a dataset holds thousands of DICOM files, too many for memory, so here
the archive is extracted, under the same kind of guards:

- the format is recognised by its magic bytes, never by the file's name;
- the archive's size, its member count and the decompressed total are bounded, and the total is
  counted while streaming, so a bomb stops at the limit instead of filling the disk;
- member names must stay inside the staging directory (no absolute paths, drive letters,
  backslashes, NUL or `..`) and may not appear twice;
- only regular files and directories are accepted: no links, devices, FIFOs, encrypted members
  or compression methods whose decoders may allocate without bound;
- files are created exclusively (mode 0600) and directories with mode 0700, only inside a fresh
  `mkdtemp` directory, so nothing outside it can be written, followed or overwritten;
- the staging directory is removed when the `with` block ends, however it ends, which also
  removes whatever a refused archive had partly extracted.

Pure Python and free of Django, so that it is cheap to test.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from blindspot_client.package.bounded_io import LimitedReader

DEFAULT_MAX_ARCHIVE_BYTES = 20 * 1024**3
DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3
DEFAULT_MAX_MEMBERS = 500_000
MANIFEST_NAME = "manifest.csv"

_CHUNK = 1024 * 1024
_TAR_BLOCK = 512
# pax and GNU long-name headers are read into memory whole by tarfile; a real one holds a path.
_MAX_TAR_HEADER_BYTES = 1024 * 1024
_TAR_HEADER_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) + (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
# zipfile reads the whole central directory into memory: bound it by the member limit.
_ZIP_DIRECTORY_BYTES_PER_MEMBER = 1024
# LZMA is left out on purpose: its decoder allocates the dictionary size the archive declares.
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2}
_ZIP_ENCRYPTED = 0x1 | 0x40  # traditional or strong encryption
_ZIP_LOCAL_MAGIC = b"PK\x03\x04"
_ZIP_EMPTY_MAGIC = b"PK\x05\x06"
_ZIP_ENTRY_MAGIC = b"PK\x01\x02"
_ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
_ZIP64_END_MAGIC = b"PK\x06\x06"
_ZIP_END_SIZE = 22
_ZIP_ENTRY_SIZE = 46
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_END_SIZE = 56
_GZIP_MAGIC = b"\x1f\x8b"
_TAR_MAGIC = b"ustar"
_TAR_MAGIC_OFFSET = 257
_DRIVE = re.compile(r"[A-Za-z]:")
# Linux's PATH_MAX; and a depth far beyond any real dataset that keeps `shutil.rmtree`, which
# recurses once per level, well inside Python's recursion limit when it removes the staging.
_MAX_NAME_CHARS = 4096
_MAX_DEPTH = 64
_SHOWN_NAME_CHARS = 120
_UNREADABLE = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    OSError,
    ValueError,  # e.g. a negative seek computed from a hostile zip's offsets
    NotImplementedError,  # zip features zipfile does not read, e.g. "compressed patched data"
    struct.error,
)
# What an upload that is not an accepted archive looks like, for the refusal message.
_LOOKS_LIKE = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"%PDF", "a PDF document"),
    (128, b"DICM", "a single DICOM file"),
    (0, b"BZh", "a bzip2-compressed file"),
    (0, b"\xfd7zXZ\x00", "an xz-compressed file"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"PK\x07\x08", "a split (multi-part) zip archive"),
    (0, b"MZ", "a Windows program (a self-extracting archive?)"),
)
_ACCEPTED = "only zip, tar and tar.gz archives are accepted"


class DatasetSourceError(Exception):
    """A refused source; `reason` is safe to show the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Limits:
    max_total_bytes: int
    max_members: int


@contextmanager
def staged_dataset_source(
    path: Path,
    *,
    staging_root: Path,
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Iterator[Path]:
    """Yield a directory holding the dataset at `path`, or raise `DatasetSourceError`.

    A directory (a server-side source) is yielded as is, resolved. A regular file is an upload:
    recognised as zip, tar.gz or tar by its magic bytes, checked and extracted into a fresh
    directory (mode 0700) under `staging_root`, which is removed on exit, also when the
    extraction is refused or the with-body raises.
    """
    path = Path(path)
    source = _source_stat(path)
    if stat.S_ISDIR(source.st_mode):
        yield path.resolve(strict=True)
        return
    if source.st_size > max_archive_bytes:
        raise DatasetSourceError(f"the archive is larger than {max_archive_bytes} bytes")
    kind = _archive_kind(path)
    staging = _make_staging_dir(Path(staging_root))
    try:
        _extract(path, kind, _Stager(staging, _Limits(max_total_bytes, max_members)))
        yield staging
    finally:
        _remove_staging(staging)


def find_manifest(root: Path) -> Path:
    """The dataset's manifest under `root`, or `DatasetSourceError` saying where it looked.

    Looks for `root/manifest.csv`; an archive of a folder unpacks to that one folder, so when
    the root holds exactly one folder and nothing else, looks in the folder instead. Failing
    `manifest.csv`, a lone CSV file in that place is taken as the manifest. Dot-files and the
    `__MACOSX` folder that macOS adds to zips are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetSourceError("the dataset source is not a directory")
    base, where = _dataset_top(root)
    manifest = base / MANIFEST_NAME
    if manifest.is_file():
        return manifest
    csvs = sorted(p for p in _visible_entries(base) if p.suffix.lower() == ".csv" and p.is_file())
    if len(csvs) == 1:
        return csvs[0]
    reason = f"no {MANIFEST_NAME} found {where}"
    if csvs:
        names = ", ".join(p.name for p in csvs)
        reason += f"; there are {len(csvs)} CSV files ({names}) and none is named {MANIFEST_NAME}"
    raise DatasetSourceError(reason)


def _dataset_top(root: Path) -> tuple[Path, str]:
    """The folder holding the dataset (the root, or the lone folder an archived folder unpacks
    to), and where that is, in words for the uploader (the staging path itself is private)."""
    if (root / MANIFEST_NAME).is_file():
        return root, "at the top level"
    entries = _visible_entries(root)
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0], f"at the top level or in its only folder {entries[0].name + '/'!r}"
    return root, "at the top level"


def _visible_entries(folder: Path) -> list[Path]:
    """The entries of `folder` that a person put there: not dot-files (.DS_Store, AppleDouble
    `._x` files) nor the `__MACOSX` folder that the macOS archiver adds."""
    return [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]


# -- the source and its format ---------------------------------------------------------------------


def _source_stat(path: Path) -> os.stat_result:
    """`path`'s status, if it is a directory or a regular file; anything else (a FIFO would
    block the read, a device never ends) is refused before it is opened."""
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetSourceError("the dataset source does not exist") from None
    if not (stat.S_ISDIR(status.st_mode) or stat.S_ISREG(status.st_mode)):
        raise DatasetSourceError("the dataset source is neither a directory nor a regular file")
    return status


def _archive_kind(path: Path) -> str:
    """The archive's kind ("zip", "tar.gz" or "tar") from its first bytes; anything else is
    refused, saying what the upload looks like."""
    with path.open("rb") as handle:
        head = handle.read(_TAR_BLOCK)
    if not head:
        raise DatasetSourceError(f"the upload is empty; {_ACCEPTED}")
    if head[:4] in (_ZIP_LOCAL_MAGIC, _ZIP_EMPTY_MAGIC):
        return "zip"
    if head[:2] == _GZIP_MAGIC:
        _check_gzip_holds_tar(path)
        return "tar.gz"
    if _is_tar_header(head):
        return "tar"
    raise DatasetSourceError(f"the upload looks like {_looks_like(head)}; {_ACCEPTED}")


def _is_tar_header(block: bytes) -> bool:
    # POSIX ("ustar\0") and GNU ("ustar ") headers both carry it; Python writes one of the two.
    return block[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + len(_TAR_MAGIC)] == _TAR_MAGIC


def _check_gzip_holds_tar(path: Path) -> None:
    """A gzip file is accepted only as a compressed tar; a lone .csv.gz or .dcm.gz is refused
    here, with a clearer message than tarfile's."""
    try:
        with gzip.open(path, "rb") as stream:
            head = stream.read(_TAR_BLOCK)
    except _UNREADABLE as exc:
        raise DatasetSourceError(f"the upload is not a readable tar.gz archive ({exc})") from exc
    if not _is_tar_header(head):
        raise DatasetSourceError(
            f"the upload is a gzip-compressed file that is not a tar archive; {_ACCEPTED}"
        )


def _looks_like(head: bytes) -> str:
    for offset, magic, description in _LOOKS_LIKE:
        if head[offset : offset + len(magic)] == magic:
            return description
    if not any(byte < 9 or 13 < byte < 32 for byte in head):
        return "a text file (a CSV file on its own?)"
    return "binary data of an unknown type"


# -- staging ---------------------------------------------------------------------------------------


def _make_staging_dir(staging_root: Path) -> Path:
    """A fresh directory that only this process's user can enter (mkdtemp makes it 0700)."""
    staging_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dataset-", dir=staging_root))


def _remove_staging(staging: Path) -> None:
    """Removes the staging directory, unless the with-body already did. Other errors are not
    swallowed: patient data left behind on disk must be noticed."""
    if os.path.lexists(staging):
        shutil.rmtree(staging)


def _extract(path: Path, kind: str, stager: _Stager) -> None:
    """Extract the archive; a corrupt or truncated one is refused, whichever layer notices."""
    try:
        if kind == "zip":
            _extract_zip(path, stager)
        else:
            _extract_tar(path, stager, compressed=kind == "tar.gz")
    except _UNREADABLE as exc:
        raise DatasetSourceError(f"the upload is not a readable {kind} archive ({exc})") from exc


class _Stager:
    """Writes checked members into the staging directory. The zip and tar readers share it, so
    both enforce the same rules on names, counts and sizes."""

    def __init__(self, root: Path, limits: _Limits) -> None:
        self.limits = limits
        self._root = root
        self._real_root = root.resolve(strict=True)
        self._members = 0
        self._declared = 0
        self._written = 0
        self._names: set[tuple[str, ...]] = set()
        self._dirs: dict[tuple[str, ...], Path] = {(): root}

    def admit(self, name: str) -> tuple[str, ...]:
        """Count a member and check its name; returns its path components."""
        self._members += 1
        if self._members > self.limits.max_members:
            raise DatasetSourceError(
                f"the archive has more than {self.limits.max_members} members "
                f"(refused at {_shown(name)})"
            )
        parts = _member_parts(name)
        if parts and parts in self._names:
            raise DatasetSourceError(f"the archive holds {_shown(name)} twice")
        self._names.add(parts)
        return parts

    def declare(self, name: str, size: int) -> None:
        """Refuse early on the sizes the archive declares; the bytes actually written are
        counted again in `write_file`, which is the guard that does not trust them."""
        self._declared += size
        if self._declared > self.limits.max_total_bytes:
            raise self._too_big(name)

    def make_dir(self, parts: tuple[str, ...], name: str) -> None:
        self._ensure_dirs(parts, name)

    def write_file(self, parts: tuple[str, ...], name: str, source: IO[bytes]) -> None:
        """Copy `source` into a new file, stopping as soon as the total passes the limit."""
        if not parts:
            raise DatasetSourceError(f"member {_shown(name)} is a file without a name")
        target = self._ensure_dirs(parts[:-1], name) / parts[-1]
        try:
            # "xb": never overwrite, never follow a link; the opener makes it 0600 from the start.
            handle = open(target, "xb", opener=_private_opener)
        except FileExistsError:
            raise DatasetSourceError(
                f"member {_shown(name)} clashes with a folder of that name"
            ) from None
        except OSError as exc:
            raise _unwritable(name, exc) from exc
        try:
            self._copy(source, handle, name)
        finally:
            _close(handle, name)

    def _copy(self, source: IO[bytes], handle: IO[bytes], name: str) -> None:
        # Never ask for more than one byte past the budget: a bomb is cut off right at the limit.
        while chunk := source.read(min(_CHUNK, self.limits.max_total_bytes - self._written + 1)):
            self._written += len(chunk)
            if self._written > self.limits.max_total_bytes:
                raise self._too_big(name)
            try:
                handle.write(chunk)
            except OSError as exc:
                raise _unwritable(name, exc) from exc

    def _ensure_dirs(self, parts: tuple[str, ...], name: str) -> Path:
        """Create the folders `parts` one level at a time (0700; `Path.mkdir(parents=True)`
        would give the intermediate ones the default mode), each checked to be a real folder
        inside the staging directory. Folders already made are remembered: most members land
        in a folder that an earlier member created."""
        known = len(parts)
        while parts[:known] not in self._dirs:
            known -= 1
        current = self._dirs[parts[:known]]
        for depth in range(known + 1, len(parts) + 1):
            current = current / parts[depth - 1]
            self._mkdir(current, "/".join(parts[:depth]), name)
            self._dirs[parts[:depth]] = current
        return current

    def _mkdir(self, folder: Path, relative: str, name: str) -> None:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise DatasetSourceError(
                    f"member {_shown(name)} needs the folder {_shown(relative)}, which the "
                    "archive holds as a file"
                ) from None
        except OSError as exc:
            raise _unwritable(name, exc) from exc
        if not folder.resolve().is_relative_to(self._real_root):
            raise DatasetSourceError(f"member {_shown(name)} points outside the archive")

    def _too_big(self, name: str) -> DatasetSourceError:
        return DatasetSourceError(
            f"the archive's decompressed size exceeds {self.limits.max_total_bytes} bytes "
            f"(at member {_shown(name)})"
        )


def _member_parts(name: str) -> tuple[str, ...]:
    """The path components of a member name that stays inside the staging directory.

    `./`, empty and `.` components are dropped, so `a//b` and `./a/b` name the same member as
    `a/b` (and count as duplicates of it). A member naming the root itself yields `()`. Depth
    and length are bounded: a hostile nesting could otherwise outlast the cleanup.
    """
    if len(name) > _MAX_NAME_CHARS:
        raise DatasetSourceError(
            f"member {_shown(name)} has a name longer than {_MAX_NAME_CHARS} characters"
        )
    if "\x00" in name:
        raise DatasetSourceError(f"member {_shown(name)} has a NUL character in its name")
    if "\\" in name:
        raise DatasetSourceError(f"member {_shown(name)} has a backslash in its name")
    if name.startswith("/") or _DRIVE.match(name):
        raise DatasetSourceError(f"member {_shown(name)} has an absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise DatasetSourceError(f"member {_shown(name)} points outside the archive ('..')")
    if len(parts) > _MAX_DEPTH:
        raise DatasetSourceError(
            f"member {_shown(name)} is nested more than {_MAX_DEPTH} folders deep"
        )
    return parts


def _shown(name: str) -> str:
    """A member name for a message: quoted, and cut short, since the archive chooses its
    length."""
    if len(name) > _SHOWN_NAME_CHARS:
        name = name[:_SHOWN_NAME_CHARS] + "..."
    return repr(name)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o600)


def _close(handle: IO[bytes], name: str) -> None:
    try:
        handle.close()
    except OSError as exc:
        raise _unwritable(name, exc) from exc


def _unwritable(name: str, exc: OSError) -> DatasetSourceError:
    """A failure on our side of the copy (disk full, name too long): not a corrupt archive."""
    return DatasetSourceError(
        f"member {_shown(name)} could not be extracted ({exc.strerror or exc})"
    )


# -- tar -------------------------------------------------------------------------------------------


def _too_large() -> DatasetSourceError:
    return DatasetSourceError("the archive's decompressed size exceeds the limit")


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses, before tarfile reads them into memory whole, oversized pax and GNU long-name
    headers, and sparse members, whose maps tarfile also reads whole (and which a dataset never
    needs). `_proc_member` is the hook tarfile documents for subclasses."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        # tarfile takes a stream that stops at a header boundary for a complete archive; a tar
        # always ends with zero blocks, so a missing or short header means a truncated upload.
        if len(buf) != tarfile.BLOCKSIZE:
            raise tarfile.ReadError("unexpected end of data (no end-of-archive marker)")
        return super().frombuf(buf, encoding, errors)

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _TAR_HEADER_TYPES and self.size > _MAX_TAR_HEADER_BYTES:
            raise DatasetSourceError(
                f"the archive has an extended header of {self.size} bytes (more than "
                f"{_MAX_TAR_HEADER_BYTES}) before member {_shown(self.name)}"
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            _refuse_sparse(self.name)
        return super()._proc_member(tarfile_)  # type: ignore[misc]  # a hook typeshed omits

    # The pax flavours of sparse files, read from the pax header's fields.
    def _proc_gnusparse_00(self, next_: tarfile.TarInfo, *_: Any) -> None:
        _refuse_sparse(next_.name)

    def _proc_gnusparse_01(self, next_: tarfile.TarInfo, *_: Any) -> None:
        _refuse_sparse(next_.name)

    def _proc_gnusparse_10(self, next_: tarfile.TarInfo, *_: Any) -> None:
        _refuse_sparse(next_.name)


def _refuse_sparse(name: str) -> None:
    raise DatasetSourceError(
        f"member {_shown(name)} is a sparse file; sparse files are not accepted"
    )


def _extract_tar(path: Path, stager: _Stager, *, compressed: bool) -> None:
    """Stream the tar (decompressing gzip ourselves, so every decompressed byte passes the
    bounded reader) and stage its members one by one; nothing is seeked or read twice."""
    limits = stager.limits
    # Headers and padding come on top of member data: a pax header, its data, the member's own
    # header and a padding block per member, and tarfile's end-of-archive reads.
    overhead = (4 * limits.max_members + 40) * _TAR_BLOCK
    with ExitStack() as stack:
        source: Any = stack.enter_context(path.open("rb"))
        if compressed:
            source = stack.enter_context(gzip.GzipFile(fileobj=source, mode="rb"))
        bounded = io.BufferedReader(
            LimitedReader(source, limits.max_total_bytes + overhead, _too_large)
        )
        # "r|": a plain stream. The gzip layer is ours; "r|*" would also accept nested bzip2,
        # xz or gzip compression inside it.
        archive = stack.enter_context(
            tarfile.open(fileobj=bounded, mode="r|", tarinfo=_BoundedTarInfo)
        )
        for member in archive:
            _stage_tar_member(archive, member, stager)
        if compressed:
            # Read to the end so that gzip checks its CRC and length trailer: tarfile stops at
            # the end-of-archive marker, and a corrupted stream must not pass unnoticed.
            while bounded.read(_CHUNK):
                pass


def _stage_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo, stager: _Stager) -> None:
    parts = stager.admit(member.name)
    _check_tar_type(member)
    if member.isdir():
        stager.make_dir(parts, member.name)
        return
    stager.declare(member.name, member.size)
    source = archive.extractfile(member)
    if source is None:  # not reached: only regular files get here
        raise DatasetSourceError(f"member {_shown(member.name)} has no data")
    stager.write_file(parts, member.name, source)


def _check_tar_type(member: tarfile.TarInfo) -> None:
    name = member.name
    if member.issym() or member.islnk():
        raise DatasetSourceError(f"member {_shown(name)} is a link; links are not accepted")
    if member.ischr() or member.isblk() or member.isfifo():
        raise DatasetSourceError(f"member {_shown(name)} is a device or FIFO")
    if not (member.isfile() or member.isdir()):
        raise DatasetSourceError(
            f"member {_shown(name)} is not a regular file or folder (tar type {member.type!r})"
        )


# -- zip -------------------------------------------------------------------------------------------


def _extract_zip(path: Path, stager: _Stager) -> None:
    """Check every member's header first (the central directory lists them all), then extract
    each through the byte counter."""
    with path.open("rb") as handle:
        _check_central_directory(handle, stager.limits.max_members)
        with zipfile.ZipFile(handle) as archive:
            planned = [(info, _admit_zip_member(info, stager)) for info in archive.infolist()]
            for info, parts in planned:
                name = info.orig_filename
                if info.is_dir():
                    stager.make_dir(parts, name)
                    continue
                with archive.open(info) as source:
                    stager.write_file(parts, name, source)


def _admit_zip_member(info: zipfile.ZipInfo, stager: _Stager) -> tuple[str, ...]:
    # orig_filename: zipfile's `filename` is cut at the first NUL, which would hide it.
    name = info.orig_filename
    parts = stager.admit(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DatasetSourceError(f"member {_shown(name)} is a link; links are not accepted")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise DatasetSourceError(f"member {_shown(name)} is a device, FIFO or socket")
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise DatasetSourceError(
            f"member {_shown(name)} is encrypted; encrypted zips are not accepted"
        )
    if info.compress_type not in _ZIP_METHODS:
        raise DatasetSourceError(
            f"member {_shown(name)} uses compression method {info.compress_type}; only stored, "
            "deflate and bzip2 are accepted"
        )
    if not info.is_dir():
        stager.declare(name, info.file_size)
    return parts


def _check_central_directory(handle: IO[bytes], max_members: int) -> None:
    """Count the central directory's entries before zipfile parses it: zipfile reads it into
    memory whole and makes an object per entry, however many a hostile archive lists.

    The directory is located as zipfile locates it, so both see the same bytes."""
    start, size = _central_directory_span(handle)
    if size > max(max_members, 1) * _ZIP_DIRECTORY_BYTES_PER_MEMBER:
        raise DatasetSourceError(
            f"the zip's central directory is {size} bytes, more than {max_members} members need"
        )
    handle.seek(start)
    directory = handle.read(size)
    offset = count = 0
    while offset < size:
        entry = directory[offset : offset + _ZIP_ENTRY_SIZE]
        if len(entry) < _ZIP_ENTRY_SIZE or entry[:4] != _ZIP_ENTRY_MAGIC:
            raise zipfile.BadZipFile("bad central directory entry")
        name_length, extra_length, comment_length = struct.unpack_from("<3H", entry, 28)
        count += 1
        if count > max_members:
            name = directory[offset + _ZIP_ENTRY_SIZE :][:name_length].decode("utf-8", "replace")
            raise DatasetSourceError(
                f"the archive has more than {max_members} members (refused at {_shown(name)})"
            )
        offset += _ZIP_ENTRY_SIZE + name_length + extra_length + comment_length


def _central_directory_span(handle: IO[bytes]) -> tuple[int, int]:
    """(start, size) of the central directory: it ends where the end record (or the zip64 end
    record before it) begins, as in zipfile's `_RealGetContents`."""
    location, record = _find_end_record(handle)
    size = int.from_bytes(record[12:16], "little")
    if location >= _ZIP64_LOCATOR_SIZE + _ZIP64_END_SIZE:
        handle.seek(location - _ZIP64_LOCATOR_SIZE)
        if handle.read(4) == _ZIP64_LOCATOR_MAGIC:
            handle.seek(location - _ZIP64_LOCATOR_SIZE - _ZIP64_END_SIZE)
            zip64 = handle.read(_ZIP64_END_SIZE)
            if zip64[:4] == _ZIP64_END_MAGIC:
                size = int.from_bytes(zip64[40:48], "little")
                location -= _ZIP64_LOCATOR_SIZE + _ZIP64_END_SIZE
    if location - size < 0:
        raise zipfile.BadZipFile("bad offset for the central directory")
    return location - size, size


def _find_end_record(handle: IO[bytes]) -> tuple[int, bytes]:
    """The end-of-central-directory record: at the very end, or followed by a comment of up to
    64 KiB, where zipfile's `_EndRecData` looks for it."""
    end = handle.seek(0, os.SEEK_END)
    if end >= _ZIP_END_SIZE:
        handle.seek(end - _ZIP_END_SIZE)
        record = handle.read(_ZIP_END_SIZE)
        if record[:4] == _ZIP_EMPTY_MAGIC and record[-2:] == b"\x00\x00":
            return end - _ZIP_END_SIZE, record
    start = max(end - (1 << 16) - _ZIP_END_SIZE, 0)
    handle.seek(start)
    tail = handle.read()
    found = tail.rfind(_ZIP_EMPTY_MAGIC)
    if found < 0 or len(tail) - found < _ZIP_END_SIZE:
        raise zipfile.BadZipFile("no end of central directory record")
    return start + found, tail[found : found + _ZIP_END_SIZE]

"""Dataset sources: a server directory passes through; an uploaded zip / tar / tar.gz is
extracted into a private staging directory, or refused, and in every case nothing is left
behind once the `with` block ends."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import pytest
from blindspot_client.package.bounded_io import LimitedReader

from validation.dicom import sources as dataset_sources
from validation.dicom.sources import (
    MANIFEST_NAME,
    DatasetSourceError,
    find_manifest,
    staged_dataset_source,
)

MB = 1024 * 1024
TarWriteMode = Literal["w", "w:gz", "w:bz2"]

DATASET = {
    "manifest.csv": b"path,label\npatient1/study1/IM0001.dcm,1\n",
    "patient1/study1/IM0001.dcm": bytes(range(256)) * 64,
    "patient1/study1/IM0002.dcm": b"\x00" * 128 + b"DICM" + b"\x01" * 1000,
    "patient2/IM0001.dcm": b"DICOM-ish bytes",
    "notes/empty.txt": b"",
}


# -- building archives -----------------------------------------------------------------------------


def _tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def write_tar(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: TarWriteMode = "w"
) -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def tar_of(files: dict[str, bytes]) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_tar_file(name, data) for name, data in files.items()]


def write_zip(path: Path, members: Sequence[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name", on purpose in a test
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in members:
                archive.writestr(info, data)
    return path


def zip_special(name: str, mode: int) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info, b"target" if stat.S_ISLNK(mode) else b""


def write_folder_archive(path: Path, kind: str, files: dict[str, bytes], folder: str = "") -> Path:
    """The same dataset as a zip (with explicit folder entries), a tar or a tar.gz."""
    prefix = f"{folder}/" if folder else ""
    if kind == "zip":
        dirs = sorted({prefix + name.rsplit("/", 1)[0] + "/" for name in files if "/" in name})
        return write_zip(
            path, [(d, b"") for d in dirs] + [(prefix + n, d) for n, d in files.items()]
        )
    mode: TarWriteMode = "w:gz" if kind == "tar.gz" else "w"
    return write_tar(path, tar_of({prefix + n: d for n, d in files.items()}), mode)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_nothing_left(staging_root: Path) -> None:
    assert not staging_root.exists() or list(staging_root.iterdir()) == []


def refusal(archive: Path, staging_root: Path, **limits: int) -> str:
    """The refusal's reason; the with-body must never run and nothing may be left behind."""
    with pytest.raises(DatasetSourceError) as caught:
        with staged_dataset_source(archive, staging_root=staging_root, **limits):
            pytest.fail("the archive should have been refused")
    assert_nothing_left(staging_root)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


@pytest.fixture
def staging_root(tmp_path: Path) -> Path:
    return tmp_path / "staging"


# -- sources that are accepted ---------------------------------------------------------------------


def test_a_directory_is_yielded_as_is(tmp_path: Path, staging_root: Path) -> None:
    source = tmp_path / "server" / "dataset"
    source.mkdir(parents=True)
    (source / MANIFEST_NAME).write_bytes(DATASET[MANIFEST_NAME])
    with staged_dataset_source(
        tmp_path / "server" / ".." / "server" / "dataset", staging_root=staging_root
    ) as root:
        assert root == source.resolve()
        assert find_manifest(root) == root / MANIFEST_NAME
    assert (source / MANIFEST_NAME).exists(), "a server directory is never removed"
    assert not staging_root.exists(), "a directory needs no staging"


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_archives_extract_identically(tmp_path: Path, staging_root: Path, kind: str) -> None:
    archive = write_folder_archive(tmp_path / "upload.bin", kind, DATASET)
    with staged_dataset_source(archive, staging_root=staging_root) as root:
        assert root.parent == staging_root
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert files_under(root) == DATASET
        assert find_manifest(root) == root / MANIFEST_NAME
        for path in root.rglob("*"):
            expected = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.lstat().st_mode) == expected, path
    assert_nothing_left(staging_root)


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_an_archived_folder_is_found_through_its_only_folder(
    tmp_path: Path, staging_root: Path, kind: str
) -> None:
    archive = write_folder_archive(tmp_path / "upload", kind, DATASET, folder="export 2024")
    with staged_dataset_source(archive, staging_root=staging_root) as root:
        assert find_manifest(root) == root / "export 2024" / MANIFEST_NAME
        assert files_under(root / "export 2024") == DATASET


def test_folder_entries_and_root_entries_are_fine(tmp_path: Path, staging_root: Path) -> None:
    members = [_tar_special(".", tarfile.DIRTYPE), _tar_special("./empty", tarfile.DIRTYPE)]
    members += [_tar_file("./a/b.dcm", b"x"), _tar_special("a", tarfile.DIRTYPE)]
    with staged_dataset_source(
        write_tar(tmp_path / "t", members), staging_root=staging_root
    ) as root:
        assert (root / "empty").is_dir()
        assert files_under(root) == {"a/b.dcm": b"x"}


def test_an_empty_zip_is_an_empty_dataset(tmp_path: Path, staging_root: Path) -> None:
    archive = write_zip(tmp_path / "empty.zip", [])
    assert archive.read_bytes()[:4] == b"PK\x05\x06"
    with staged_dataset_source(archive, staging_root=staging_root) as root:
        assert list(root.iterdir()) == []
        with pytest.raises(DatasetSourceError, match="no manifest.csv found at the top level"):
            find_manifest(root)


def test_the_staging_root_is_created_and_each_upload_gets_its_own_dir(tmp_path: Path) -> None:
    staging_root = tmp_path / "a" / "b"
    archive = write_folder_archive(tmp_path / "up.zip", "zip", DATASET)
    with staged_dataset_source(archive, staging_root=staging_root) as first:
        with staged_dataset_source(archive, staging_root=staging_root) as second:
            assert first != second
            assert files_under(first) == files_under(second) == DATASET
    assert_nothing_left(staging_root)


def test_an_exception_in_the_body_still_removes_the_staging_dir(
    tmp_path: Path, staging_root: Path
) -> None:
    archive = write_folder_archive(tmp_path / "up.tgz", "tar.gz", DATASET)
    with pytest.raises(RuntimeError, match="import failed"):
        with staged_dataset_source(archive, staging_root=staging_root) as root:
            assert (root / MANIFEST_NAME).exists()
            raise RuntimeError("import failed")
    assert not root.exists()
    assert_nothing_left(staging_root)


def test_the_body_may_remove_the_staging_dir_itself(tmp_path: Path, staging_root: Path) -> None:
    archive = write_folder_archive(tmp_path / "up.zip", "zip", DATASET)
    with staged_dataset_source(archive, staging_root=staging_root) as root:
        shutil.rmtree(root)
    assert_nothing_left(staging_root)


# -- find_manifest ---------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_find_manifest_takes_a_lone_csv_of_another_name(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"labels.csv": b"a", "img/1.dcm": b"x", "README.txt": b"r"})
    assert find_manifest(root) == root / "labels.csv"


def test_find_manifest_takes_a_lone_csv_inside_the_only_folder(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"export/Labels.CSV": b"a", "export/img/1.dcm": b"x"})
    assert find_manifest(root) == root / "export" / "Labels.CSV"


def test_find_manifest_prefers_the_root_manifest(tmp_path: Path) -> None:
    root = _tree(tmp_path, {MANIFEST_NAME: b"a", "other.csv": b"b", "sub/manifest.csv": b"c"})
    assert find_manifest(root) == root / MANIFEST_NAME


def test_find_manifest_ignores_what_macos_adds_to_a_zip(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "dataset/manifest.csv": b"a",
            "dataset/1.dcm": b"x",
            "__MACOSX/dataset/._manifest.csv": b"apple",
            ".DS_Store": b"apple",
        },
    )
    assert find_manifest(root) == root / "dataset" / MANIFEST_NAME


def test_find_manifest_says_where_it_looked(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"img/1.dcm": b"x", "notes.txt": b"n"})
    with pytest.raises(DatasetSourceError) as caught:
        find_manifest(root)
    assert caught.value.reason == "no manifest.csv found at the top level"
    assert str(tmp_path) not in caught.value.reason, "the staging path is private"


def test_find_manifest_names_the_only_folder_it_looked_in(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"export/img/1.dcm": b"x"})
    with pytest.raises(DatasetSourceError) as caught:
        find_manifest(root)
    assert caught.value.reason == (
        "no manifest.csv found at the top level or in its only folder 'export/'"
    )


def test_find_manifest_will_not_guess_between_csv_files(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"b.csv": b"b", "a.csv": b"a"})
    with pytest.raises(DatasetSourceError) as caught:
        find_manifest(root)
    assert caught.value.reason == (
        "no manifest.csv found at the top level; there are 2 CSV files (a.csv, b.csv) and none "
        "is named manifest.csv"
    )


def test_find_manifest_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetSourceError, match="not a directory"):
        find_manifest(tmp_path / "missing")


# -- refused archives: tar and tar.gz --------------------------------------------------------------


def _pax_with(name: str, headers: dict[str, str]) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.pax_headers = headers
    return info, b""


TAR_REFUSALS: dict[str, tuple[list[tuple[tarfile.TarInfo, bytes]], str]] = {
    "absolute": ([_tar_file("/etc/cron.d/x", b"x")], "member '/etc/cron.d/x' has an absolute path"),
    "drive": ([_tar_file("C:/x.dcm", b"x")], "member 'C:/x.dcm' has an absolute path"),
    "backslash": ([_tar_file("a\\..\\x", b"x")], "member 'a\\\\..\\\\x' has a backslash"),
    "nul": ([_pax_with("x", {"path": "a\x00b"})], "member 'a\\x00b' has a NUL character"),
    "dotdot": (
        [_tar_file("a/../../x", b"x")],
        "member 'a/../../x' points outside the archive ('..')",
    ),
    "symlink": (
        [_tar_special("link", tarfile.SYMTYPE, "/etc/passwd")],
        "member 'link' is a link; links are not accepted",
    ),
    "hardlink": (
        [_tar_file("a", b"x"), _tar_special("b", tarfile.LNKTYPE, "a")],
        "member 'b' is a link",
    ),
    "char device": ([_tar_special("tty", tarfile.CHRTYPE)], "member 'tty' is a device or FIFO"),
    "block device": ([_tar_special("sda", tarfile.BLKTYPE)], "member 'sda' is a device or FIFO"),
    "fifo": ([_tar_special("pipe", tarfile.FIFOTYPE)], "member 'pipe' is a device or FIFO"),
    "duplicate": (
        [_tar_file("a/b.dcm", b"1"), _tar_file("./a//b.dcm", b"2")],
        "the archive holds './a//b.dcm' twice",
    ),
    "file then folder": (
        [_tar_file("a", b"1"), _tar_file("a/b.dcm", b"2")],
        "member 'a/b.dcm' needs the folder 'a', which the archive holds as a file",
    ),
    "folder then file": (
        [_tar_file("a/b.dcm", b"1"), _tar_file("a", b"2")],
        "member 'a' clashes with a folder of that name",
    ),
    "nameless file": ([_tar_file(".", b"1")], "member '.' is a file without a name"),
    "huge pax header": (
        [_pax_with("x", {"comment": "c" * (2 * MB)})],
        "the archive has an extended header of",
    ),
    "sparse": ([_tar_special("holes", tarfile.GNUTYPE_SPARSE)], "member 'holes' is a sparse file"),
    # Deeper than shutil.rmtree could remove, were it not refused.
    "too deep": ([_tar_file("a/" * 2000 + "x", b"x")], "is nested more than 64 folders deep"),
}


@pytest.mark.parametrize("mode", ["w", "w:gz"])
@pytest.mark.parametrize("case", TAR_REFUSALS, ids=str)
def test_tar_refusals(tmp_path: Path, staging_root: Path, case: str, mode: TarWriteMode) -> None:
    members, message = TAR_REFUSALS[case]
    # A good file first, so that the refusal has partial extraction to clean up.
    archive = write_tar(tmp_path / "upload", [_tar_file("ok/first.dcm", b"ok"), *members], mode)
    assert message in refusal(archive, staging_root)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_member_limit(tmp_path: Path, staging_root: Path, mode: TarWriteMode) -> None:
    archive = write_tar(tmp_path / "t", tar_of({f"{i}.dcm": b"x" for i in range(4)}), mode)
    reason = refusal(archive, staging_root, max_members=3)
    assert reason == "the archive has more than 3 members (refused at '3.dcm')"


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_total_size_limit(tmp_path: Path, staging_root: Path, mode: TarWriteMode) -> None:
    archive = write_tar(tmp_path / "t", tar_of({"a.dcm": b"x" * 600, "b.dcm": b"y" * 600}), mode)
    reason = refusal(archive, staging_root, max_total_bytes=1000)
    assert reason == "the archive's decompressed size exceeds 1000 bytes (at member 'b.dcm')"


def test_a_long_name_is_refused_and_cut_short_in_the_message(
    tmp_path: Path, staging_root: Path
) -> None:
    archive = write_tar(tmp_path / "t", [_tar_file("n" * 5000, b"x")])
    reason = refusal(archive, staging_root)
    assert reason == f"member {'n' * 120 + '...'!r} has a name longer than 4096 characters"


# -- refused archives: zip -------------------------------------------------------------------------


ZIP_REFUSALS: dict[str, tuple[list[tuple[zipfile.ZipInfo | str, bytes]], str]] = {
    "absolute": ([("/etc/x", b"x")], "member '/etc/x' has an absolute path"),
    "drive": ([("C:/Windows/x.dll", b"x")], "member 'C:/Windows/x.dll' has an absolute path"),
    "backslash": ([("..\\x", b"x")], "member '..\\\\x' has a backslash"),
    "dotdot": ([("../x", b"x")], "member '../x' points outside the archive ('..')"),
    "dotdot folder": ([("a/../../", b"")], "member 'a/../../' points outside"),
    "symlink": ([zip_special("link", stat.S_IFLNK | 0o777)], "member 'link' is a link"),
    "char device": ([zip_special("tty", stat.S_IFCHR | 0o600)], "member 'tty' is a device"),
    "fifo": ([zip_special("pipe", stat.S_IFIFO | 0o600)], "member 'pipe' is a device, FIFO"),
    "too deep": ([("a/" * 65 + "x", b"x")], "is nested more than 64 folders deep"),
    "duplicate": ([("a/b.dcm", b"1"), ("a/b.dcm", b"2")], "the archive holds 'a/b.dcm' twice"),
    "duplicate folder": ([("a/", b""), ("a", b"2")], "the archive holds 'a' twice"),
    "file then folder": (
        [("a", b"1"), ("a/b.dcm", b"2")],
        "member 'a/b.dcm' needs the folder 'a', which the archive holds as a file",
    ),
}


@pytest.mark.parametrize("case", ZIP_REFUSALS, ids=str)
def test_zip_refusals(tmp_path: Path, staging_root: Path, case: str) -> None:
    members, message = ZIP_REFUSALS[case]
    archive = write_zip(tmp_path / "upload", [("ok/first.dcm", b"ok"), *members])
    assert message in refusal(archive, staging_root)


def _patch_all(data: bytes, magic: bytes, offset: int, change: Callable[[int], int]) -> bytes:
    """Apply `change` to the byte at `offset` of every header that starts with `magic`."""
    patched = bytearray(data)
    start = patched.find(magic)
    while start >= 0:
        patched[start + offset] = change(patched[start + offset])
        start = patched.find(magic, start + 1)
    return bytes(patched)


def test_zip_nul_in_a_name_is_refused_although_zipfile_hides_it(
    tmp_path: Path, staging_root: Path
) -> None:
    data = write_zip(tmp_path / "z", [("ok.dcm", b"1"), ("aXb.dcm", b"2")]).read_bytes()
    archive = tmp_path / "nul.zip"
    archive.write_bytes(data.replace(b"aXb.dcm", b"a\x00b.dcm"))
    assert refusal(archive, staging_root) == "member 'a\\x00b.dcm' has a NUL character in its name"


def test_zip_encrypted_member(tmp_path: Path, staging_root: Path) -> None:
    data = write_zip(tmp_path / "z", [("secret.dcm", b"1")]).read_bytes()
    data = _patch_all(data, b"PK\x03\x04", 6, lambda flags: flags | 1)  # local header flags
    data = _patch_all(data, b"PK\x01\x02", 8, lambda flags: flags | 1)  # central directory flags
    archive = tmp_path / "encrypted.zip"
    archive.write_bytes(data)
    assert refusal(archive, staging_root) == (
        "member 'secret.dcm' is encrypted; encrypted zips are not accepted"
    )


def test_zip_lzma_member(tmp_path: Path, staging_root: Path) -> None:
    archive = tmp_path / "lzma.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_LZMA) as out:
        out.writestr("a.dcm", b"x" * 100)
    assert "member 'a.dcm' uses compression method 14" in refusal(archive, staging_root)


def test_zip_member_limit(tmp_path: Path, staging_root: Path) -> None:
    archive = write_zip(tmp_path / "z", [(f"{i}.dcm", b"x") for i in range(4)])
    reason = refusal(archive, staging_root, max_members=3)
    assert reason == "the archive has more than 3 members (refused at '3.dcm')"


def test_zip_member_limit_is_checked_before_zipfile_reads_the_directory(
    tmp_path: Path, staging_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_zip(tmp_path / "z", [(f"{i}.dcm", b"x") for i in range(4)])
    monkeypatch.setattr(dataset_sources.zipfile, "ZipFile", None)  # would fail if reached
    assert "more than 3 members" in refusal(archive, staging_root, max_members=3)


def test_zip_total_size_limit(tmp_path: Path, staging_root: Path) -> None:
    archive = write_zip(tmp_path / "z", [("a.dcm", b"x" * 600), ("b.dcm", b"y" * 600)])
    reason = refusal(archive, staging_root, max_total_bytes=1000)
    assert reason == "the archive's decompressed size exceeds 1000 bytes (at member 'b.dcm')"


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_the_archive_size_limit(tmp_path: Path, staging_root: Path, kind: str) -> None:
    archive = write_folder_archive(tmp_path / "up", kind, DATASET)
    assert refusal(archive, staging_root, max_archive_bytes=100) == (
        "the archive is larger than 100 bytes"
    )


# -- bombs -----------------------------------------------------------------------------------------


@pytest.fixture
def staged_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bytes each staging directory held when it was removed."""
    sizes: list[int] = []
    remove = dataset_sources._remove_staging

    def measure_then_remove(staging: Path) -> None:
        sizes.append(sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()))
        remove(staging)

    monkeypatch.setattr(dataset_sources, "_remove_staging", measure_then_remove)
    return sizes


def test_a_zip_bomb_stops_at_the_limit(
    tmp_path: Path, staging_root: Path, staged_bytes: list[int]
) -> None:
    archive = write_zip(tmp_path / "bomb.zip", [("ok.dcm", b"1"), ("zeros.dcm", bytes(50 * MB))])
    assert archive.stat().st_size < MB
    reason = refusal(archive, staging_root, max_total_bytes=MB)
    assert reason == f"the archive's decompressed size exceeds {MB} bytes (at member 'zeros.dcm')"
    # Refused on the declared sizes, read from the central directory before anything is written.
    assert staged_bytes == [0]


def test_a_gzip_tar_bomb_stops_at_the_limit(
    tmp_path: Path, staging_root: Path, staged_bytes: list[int]
) -> None:
    members = [_tar_file("ok.dcm", b"1"), _tar_file("zeros.dcm", bytes(50 * MB))]
    archive = write_tar(tmp_path / "bomb.tgz", members, "w:gz")
    assert archive.stat().st_size < MB
    reason = refusal(archive, staging_root, max_total_bytes=MB)
    assert reason == f"the archive's decompressed size exceeds {MB} bytes (at member 'zeros.dcm')"
    # Refused at the bomb's header, after only the first member was written.
    assert staged_bytes == [1]


class _Zeros(io.RawIOBase):
    """An endless member: what an archive whose declared sizes lie would stream."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        buffer[:] = bytes(len(buffer))
        return len(buffer)


def test_the_streaming_count_does_not_trust_declared_sizes(tmp_path: Path) -> None:
    # Declared sizes are checked first, so only a lying stream reaches the streaming guard.
    stager = dataset_sources._Stager(tmp_path, dataset_sources._Limits(MB, 10))
    with pytest.raises(DatasetSourceError, match="decompressed size exceeds"):
        stager.write_file(("zeros.dcm",), "zeros.dcm", io.BufferedReader(_Zeros()))
    assert (tmp_path / "zeros.dcm").stat().st_size == MB


def test_a_tar_stream_is_bounded_below_tarfile(tmp_path: Path) -> None:
    reader = LimitedReader(_Zeros(), 1000, dataset_sources._too_large)
    with pytest.raises(DatasetSourceError, match="exceeds the limit"):
        io.BufferedReader(reader).read(5000)


# -- corrupt and unknown uploads -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cut", "message"),
    [
        ("zip", 0.5, "the upload is not a readable zip archive (no end of central directory"),
        ("tar", 0.5, "the upload is not a readable tar archive (unexpected end of data)"),
        ("tar.gz", 0.6, "the upload is not a readable tar.gz archive ("),
    ],
)
def test_truncated_archives(
    tmp_path: Path, staging_root: Path, kind: str, cut: float, message: str
) -> None:
    data = write_folder_archive(tmp_path / "full", kind, DATASET).read_bytes()
    archive = tmp_path / "truncated"
    archive.write_bytes(data[: int(len(data) * cut)])
    assert refusal(archive, staging_root).startswith(message)


def test_a_tar_cut_at_a_member_boundary(tmp_path: Path, staging_root: Path) -> None:
    # tarfile alone would take this for a complete archive holding only the first member.
    data = write_tar(tmp_path / "full", tar_of({"a.dcm": b"a" * 512, "b.dcm": b"b"})).read_bytes()
    archive = tmp_path / "cut.tar"
    archive.write_bytes(data[:1024])  # a's header and data
    assert refusal(archive, staging_root) == (
        "the upload is not a readable tar archive (unexpected end of data (no end-of-archive "
        "marker))"
    )


def test_a_tar_gz_with_a_bad_crc(tmp_path: Path, staging_root: Path) -> None:
    tar = write_folder_archive(tmp_path / "full.tar", "tar", DATASET).read_bytes()
    # Padding after the end-of-archive marker, more than any read-ahead: tarfile stops at the
    # marker, so only reading on to the end makes gzip check its trailer.
    data = bytearray(gzip.compress(tar + bytes(4 * MB)))
    data[-8] ^= 0xFF  # the trailer's CRC-32
    archive = tmp_path / "bad-crc.tgz"
    archive.write_bytes(bytes(data))
    assert refusal(archive, staging_root).startswith(
        "the upload is not a readable tar.gz archive (CRC check failed"
    )


def test_a_zip_with_a_bad_crc(tmp_path: Path, staging_root: Path) -> None:
    archive = tmp_path / "stored.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        out.writestr("a.dcm", b"A" * 100)
    archive.write_bytes(archive.read_bytes().replace(b"A" * 100, b"A" * 99 + b"B"))
    assert "not a readable zip archive (Bad CRC-32 for file 'a.dcm')" in refusal(
        archive, staging_root
    )


def test_garbage_after_a_gzip_magic(tmp_path: Path, staging_root: Path) -> None:
    archive = tmp_path / "junk.tgz"
    archive.write_bytes(b"\x1f\x8b" + os.urandom(64))
    assert refusal(archive, staging_root).startswith("the upload is not a readable tar.gz archive")


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "the upload looks like a PNG image"),
        (
            b"path,label\nIM0001.dcm,1\n",
            "the upload looks like a text file (a CSV file on its own?)",
        ),
        (bytes(128) + b"DICM" + bytes(400), "the upload looks like a single DICOM file"),
        (b"\x00\x01\x02\x03" * 200, "the upload looks like binary data of an unknown type"),
        (b"", "the upload is empty"),
        (
            gzip.compress(b"path,label\n", mtime=0),
            "the upload is a gzip-compressed file that is not a tar",
        ),
    ],
)
def test_unknown_formats(
    tmp_path: Path, staging_root: Path, content: bytes, looks_like: str
) -> None:
    upload = tmp_path / "upload.zip"  # the name does not matter, only the bytes
    upload.write_bytes(content)
    reason = refusal(upload, staging_root)
    assert reason.startswith(looks_like)
    assert reason.endswith("only zip, tar and tar.gz archives are accepted")


def test_a_bzip2_tar_is_refused(tmp_path: Path, staging_root: Path) -> None:
    archive = write_tar(tmp_path / "up.tar.gz", tar_of(DATASET), "w:bz2")
    assert refusal(archive, staging_root).startswith("the upload looks like a bzip2-compressed")


def test_a_missing_source(tmp_path: Path, staging_root: Path) -> None:
    assert refusal(tmp_path / "nope", staging_root) == "the dataset source does not exist"


def test_a_fifo_source_is_refused_without_blocking(tmp_path: Path, staging_root: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert refusal(tmp_path / "pipe", staging_root) == (
        "the dataset source is neither a directory nor a regular file"
    )

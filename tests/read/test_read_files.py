"""Input discovery: paths, folders, globs and ZIP archives to files; what matches no file is
one line naming it."""

from __future__ import annotations

import zipfile

import pytest

from era5cache.errors import InputError
from era5cache.read.files import expand_inputs, list_inputs


def test_folders_globs_and_links(tmp_path):
    (tmp_path / "a.nc").write_bytes(b"x")
    (tmp_path / "b.grib").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.nc").mkdir()  # a folder named like a file: never an input
    (tmp_path / "link.nc").symlink_to("a.nc")
    assert list_inputs([str(tmp_path)]) == [tmp_path / "a.nc", tmp_path / "b.grib"]
    # the glob's folder is left out, the link to a.nc is a.nc again
    assert list_inputs([str(tmp_path / "*.nc")]) == [tmp_path / "a.nc"]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.nc", "no such input file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "folder holds no NetCDF, GRIB or ZIP"),
    (lambda d: (d / "x.nc").mkdir() or d / "*.nc", "matches only folders, no input file"),
    (lambda d: (d / "a.nc").symlink_to("b.nc") or (d / "b.nc").symlink_to("a.nc")
     or d / "a.nc", "symbolic links in a loop"),
    (lambda d: (d / "gone.nc").symlink_to("nowhere.nc") or d / "gone.nc",
     "broken symbolic link (to nowhere.nc"),
])
def test_what_matches_no_file_is_named(tmp_path, make, message):
    pattern = make(tmp_path)
    with pytest.raises(InputError) as info:
        list_inputs([str(pattern)])
    assert str(info.value).startswith(f"{pattern}: {message}")


def test_damaged_zip_archives(tmp_path):
    not_zip = tmp_path / "download.zip"
    not_zip.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(InputError, match=r"download\.zip: not a readable ZIP archive"):
        expand_inputs([str(not_zip)], tmp_path / "x")
    cut = tmp_path / "cut.zip"
    with zipfile.ZipFile(cut, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data_stream-oper_stepType-instant.nc", bytes(range(256)) * 4000)
    data = bytearray(cut.read_bytes())
    data[200:400] = bytes(200)  # the deflated member damaged, the directory intact
    cut.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"cut\.zip: damaged ZIP archive"):
        expand_inputs([str(cut)], tmp_path / "y")

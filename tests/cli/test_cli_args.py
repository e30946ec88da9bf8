"""The command line's arguments as users type them."""

from __future__ import annotations

from era5cache.cli import _parser


def test_input_takes_any_number_of_paths_and_repeats():
    """``--input new/*.nc`` after the shell expands the glob, as the README writes it."""
    a = _parser().parse_args(["preprocess", "r.yaml", "--append", "--input", "a.nc", "b.nc",
                              "c.nc", "--input", "d.nc", "--no-progress"])
    assert a.config == "r.yaml" and a.append and a.no_progress
    assert a.input == ["a.nc", "b.nc", "c.nc", "d.nc"]
    assert _parser().parse_args(["preprocess", "--input", "x"]).input == ["x"]
    assert _parser().parse_args(["preprocess"]).input is None

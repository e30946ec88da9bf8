"""The command line's arguments as users type them."""

from __future__ import annotations

from era5cache.cli import parser


def test_input_takes_any_number_of_paths_and_repeats():
    """``--input new/*.nc`` after the shell expands the glob, as the README writes it."""
    a = parser().parse_args(["preprocess", "r.yaml", "--append", "--input", "a.nc", "b.nc",
                              "c.nc", "--input", "d.nc", "--no-progress"])
    assert a.config == "r.yaml" and a.append and a.no_progress
    assert a.input == ["a.nc", "b.nc", "c.nc", "d.nc"]
    assert parser().parse_args(["preprocess", "--input", "x"]).input == ["x"]
    assert parser().parse_args(["preprocess"]).input is None


def test_library_warnings_are_held_and_dropped_on_failure(monkeypatch, capsys, tmp_path):
    """A failing command's stderr is its one line; a succeeding one shows what it held."""
    import warnings

    from era5cache import cli
    from era5cache.errors import CacheError
    from era5cache.format import inspect

    def fails(root):
        warnings.warn("a library's complaint", UserWarning, stacklevel=1)
        raise CacheError(f"{root}: damaged")

    def succeeds(root):
        warnings.warn("a library's complaint", UserWarning, stacklevel=1)
        return "summary"

    monkeypatch.setattr(inspect, "inspect_cache", fails)
    with warnings.catch_warnings(record=True) as shown:  # what reaches the user
        warnings.simplefilter("always")
        assert cli.main(["inspect", str(tmp_path)]) == 2
        assert shown == []
        assert capsys.readouterr().err.splitlines() == [f"era5cache inspect: {tmp_path}: damaged"]
        monkeypatch.setattr(inspect, "inspect_cache", succeeds)
        assert cli.main(["inspect", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "summary\n"
    assert [str(w.message) for w in shown] == ["a library's complaint"]

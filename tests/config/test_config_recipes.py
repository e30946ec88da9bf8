"""The recipes as typed models: every bad value is one line naming the file and the key
(exit 2 through the command line); the shipped recipes load; the sample has one definition."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ROOT, cli_in_process

from era5cache.config.loading import validate
from era5cache.config.model import ModelConfig
from era5cache.config.recipe import PreprocessConfig, load_preprocess_config, with_overrides
from era5cache.config.sample import SampleSpec
from era5cache.config.trainer import TrainConfig, load_train_config, override
from era5cache.errors import ConfigError
from era5cache.timeaxis import Period, Periods


def test_shipped_recipes_load_with_their_values():
    cfg = load_preprocess_config(ROOT / "pipeline" / "era5_2deg.yaml")
    assert cfg.chunk_steps == 120 and cfg.variables == ("sst", "t2m", "z500")
    assert cfg.periods.val == Period("2020-01-01T00", "2020-06-30T18")
    assert cfg.sample == SampleSpec(end="2020-12-31T18", resolution=1.0)
    assert cfg.source.endswith("era5_2deg.yaml")
    t = load_train_config(ROOT / "pipeline" / "ratransformer.yaml")
    assert t.trainer.max_epochs == 12 and t.optim.ema_decay == 0.99
    assert t.model == ModelConfig()


RECIPE_CASES = [
    ("chunk_steps: abc", "chunk_steps: Input should be a valid integer"),
    ("chunk_steps: 0", "chunk_steps: Input should be greater than 0"),
    # a Zarr chunk of 5 PiB was allocated once
    ("chunk_steps: 99999999999", "chunk_steps: Input should be less than or equal to 37282"),
    ("variables: []", "variables: no channel named"),
    ("all_nan_steps: drop", "all_nan_steps: Input should be 'fail' or 'skip'"),
    ("valid_share: {sst: 1.5}", "valid_share.sst: Input should be less than or equal to 1"),
    ("variables: [sst]\nvalid_share: {t2m: 0.2}", "valid_share names ['t2m']"),
    ("periods: {train: [2019-06-01, 2019-01-01]}", "periods: train: period"),
    ("periods: {training: [2019-01-01, 2019-02-01]}", "periods: unknown period(s) ['training']"),
    ("dask: {workers: -1}", "dask.workers: Input should be greater than 0"),
    ("dask: {memory_limit: lots}", "dask.memory_limit: not a size: 'lots' (use e.g. 2GiB)"),
    ("sample: {layout: grib}", "sample.layout: Input should be 'new', 'legacy', 'arco' or "
     "'wb2'"),
    ("step: 7h", "step 7h neither divides a day nor is whole days"),
    ("step: often", "cannot parse time step 'often'"),
    ("start: 2020-13-01", "not valid YAML (an impossible date: month must be in 1..12)"),
    ("start: '2020-13-01'", "start '2020-13-01' is not an ISO date"),
    ("{start: '2020-02-01', end: '2020-01-01'}", "end 2020-01-01 is before start 2020-02-01"),
    ("sample: {resolution: 0.7}", "sample: resolution 0.7 does not divide 360 degrees"),
    ("chunksteps: 12", "chunksteps: unknown key"),
    ("member: -1", "member: Input should be greater than or equal to 0"),
    ("member: all", "member: Input should be a valid integer, unable to parse string as an "
                   "integer, or Input should be 'mean' (got 'all')"),
    ("source: x.yaml", "source: unknown key"),
    ("- a list", "expected a mapping at the top level"),
]
TRAINER_CASES = [
    ("trainer: {data_mode: gpu}", "trainer.data_mode: Input should be 'auto', 'resident', "
     "'resident_sharded', 'loader' or 'blocks' (got 'gpu')"),
    ("trainer: {pool_bytes: lots}", "trainer.pool_bytes: not a size: 'lots' (use e.g. 16MiB)"),
    ("trainer: {precision: fp8}", "trainer.precision: precision 'fp8' is not one of"),
    ("trainer: {batch_size: 0}", "trainer.batch_size: Input should be greater than 0"),
    ("trainer: {max_time: 2h}", "trainer.max_time: max_time '2h' is not DD:HH:MM:SS"),
    ("optim: {ema_decay: 1.0}", "optim.ema_decay: Input should be less than 1"),
    ("optim: {lr_scaling: linear}", "optim.lr_scaling: Input should be 'none' or 'sqrt'"),
    ("model: {d_model: 100}", "model: d_model 100 is not a multiple of num_heads 8"),
    ("model: {dropout: 1.5}", "model: dropout must be in [0, 1)"),
    ("model: {width_px: 3}", "model.width_px: unknown key"),
    ("lead: 0", "lead: Input should be greater than 0"),
]


@pytest.mark.parametrize(("load", "yaml", "message"),
                         [(load_preprocess_config, *c) for c in RECIPE_CASES]
                         + [(load_train_config, *c) for c in TRAINER_CASES])
def test_bad_values_name_the_file_and_key(tmp_path, load, yaml, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml + "\n")
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_command_line_overrides_are_checked_too():
    cfg = with_overrides(PreprocessConfig(), chunk_steps=24, dask_workers=3)
    assert (cfg.chunk_steps, cfg.dask.workers, cfg.dask.memory_limit) == (24, 3, "2GiB")
    with pytest.raises(ConfigError, match=r"^command line: chunk_steps: Input should be "
                                          r"greater than 0"):
        with_overrides(cfg, chunk_steps=0)
    t = override(TrainConfig(), "trainer", batch_size=7, devices=2)
    assert (t.trainer.batch_size, t.trainer.devices, t.trainer.max_epochs) == (7, 2, 500)
    with pytest.raises(ConfigError, match=r"^command line: trainer.num_workers"):
        override(t, "trainer", num_workers=-2)


def test_member_is_an_output_setting_only_when_set():
    assert "member" not in PreprocessConfig().output_settings()  # older caches stay current
    assert PreprocessConfig(member=2).output_settings()["member"] == 2
    assert PreprocessConfig(member="mean").output_settings()["member"] == "mean"


def test_models_are_frozen_and_round_trip_through_json():
    cfg = with_overrides(PreprocessConfig(), periods=Periods(train=Period("2019-01-01",
                                                                          "2019-02-01")))
    with pytest.raises(Exception, match="frozen"):
        cfg.chunk_steps = 3
    again = validate(PreprocessConfig, cfg.to_json(), "json")
    assert again.periods == cfg.periods and again.to_json() == cfg.to_json()
    t = TrainConfig()
    assert validate(TrainConfig, t.to_json(), "json") == t


def test_sample_settings_have_one_definition():
    """``era5cache sample``'s defaults are SampleSpec's; the recipe's section is one too."""
    from era5cache.cli import parser

    args = parser().parse_args(["sample", "--out", "x"])
    spec = SampleSpec()
    for f in dataclasses.fields(SampleSpec):
        if hasattr(args, f.name) and f.name != "out":
            assert getattr(args, f.name) == getattr(spec, f.name), f.name
    with pytest.raises(ValueError, match="before start"):
        SampleSpec(start="2019-02-01", end="2019-01-01")


def test_cli_reports_a_bad_recipe_in_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [nowhere]\nchunk_steps: \"abc\"\n")
    r = cli_in_process("preprocess", bad)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"era5cache preprocess: {bad}: chunk_steps: Input should be a valid integer, unable "
        "to parse string as an integer (got 'abc')"]
    t = tmp_path / "t.yaml"
    t.write_text("trainer: {data_mode: gpu}\n")
    r = cli_in_process("train", t)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"{t}: trainer.data_mode: Input should be" in r.stderr


def test_recipes_in_utf16_are_read_and_other_bytes_refused(tmp_path):
    """YAML may be UTF-16 with a byte-order mark (Windows editors save it so)."""
    text = "variables: [t2m, sst]\nchunk_steps: 24\n"
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig"):
        path = tmp_path / f"{encoding}.yaml"
        bom = b"\xfe\xff" if encoding == "utf-16-be" else b""
        path.write_bytes(bom + text.encode(encoding))
        cfg = load_preprocess_config(path)
        assert cfg.variables == ("t2m", "sst") and cfg.chunk_steps == 24, encoding
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("variables: [t2m]  # Temp\xe9rature\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 24\); save"):
        load_preprocess_config(bad)

"""The conservative regridder against analytic fields, a float64 reference and CDO remapcon."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
from conftest import run_cdo_remapcon

from era5cache.grid import TARGET_LAT_EDGES, TARGET_LON_EDGES, SourceGrid, lat_bounds, lon_bounds
from era5cache.regrid.conservative import (
    ConservativeRegridder,
    CoverageError,
    InfiniteValueError,
    Work,
)
from era5cache.regrid.weights import as_slice


def era5_grid(res: float, ascending: bool = False, lon180: bool = False) -> SourceGrid:
    lat = np.linspace(90, -90, int(round(180 / res)) + 1)
    lon = np.arange(int(round(360 / res))) * res
    if ascending:
        lat = lat[::-1]
    if lon180:
        lon = np.where(lon >= 180, lon - 360, lon)
        lon = np.sort(lon)
    return SourceGrid(lat, lon)


def test_target_grid_is_the_fixed_contract():
    r = ConservativeRegridder.for_grid(era5_grid(1.0))
    assert r.area.shape == (80, 180)
    np.testing.assert_allclose(TARGET_LAT_EDGES[[0, -1]], [-80, 80])
    np.testing.assert_allclose(TARGET_LON_EDGES[[0, -1]], [0, 360])


def test_source_bounds_midpoints_clipped_at_poles():
    b = lat_bounds(np.array([90.0, 89.75, 89.5]))
    np.testing.assert_allclose(b[0], [89.875, 90.0])
    np.testing.assert_allclose(b[1], [89.625, 89.875])
    lb = lon_bounds(np.arange(1440) * 0.25)
    np.testing.assert_allclose(lb[0], [359.875 - 360 + 360, 360.125])  # wraps across 0E


def test_constant_field_stays_constant_and_weights_on_quarter_degree():
    g = era5_grid(0.25)
    r = ConservativeRegridder.for_grid(g)
    out = r(np.full((1, *g.shape), 273.15, np.float32))
    np.testing.assert_allclose(out, 273.15, rtol=1e-7)
    # One 2-degree cell covers 9 source rows; the two end rows at (about) half weight.
    w = r.lat.weight[40]
    nz = w[w > 0]
    assert nz.size == 9
    assert nz[0] / nz[1:-1].mean() == pytest.approx(0.5, rel=1e-3)
    assert nz[-1] / nz[1:-1].mean() == pytest.approx(0.5, rel=1e-3)


def test_analytic_cell_means():
    """f = sin(lat) + cos(lon): exact 2-degree cell means have closed forms.

    The source is a 0.5-degree grid whose cell edges fall on target edges, holding the exact
    cell means of f, so the conservative result must equal the exact 2-degree cell means.
    """
    g = SourceGrid(np.arange(89.75, -90, -0.5), np.arange(0.25, 360, 0.5))
    # Cell averages of the source cells themselves (so the source field is exact).
    lb = np.deg2rad(lat_bounds(g.lat))
    wb = np.deg2rad(lon_bounds(g.lon))
    sn, ss = np.sin(lb[:, 1]), np.sin(lb[:, 0])
    s_lat = (sn**2 - ss**2) / 2 / (sn - ss)
    s_lon = (np.sin(wb[:, 1]) - np.sin(wb[:, 0])) / (wb[:, 1] - wb[:, 0])
    field = (s_lat[:, None] + s_lon[None, :])[None]
    out = ConservativeRegridder.for_grid(g)(field.astype(np.float64))
    te = np.deg2rad(TARGET_LAT_EDGES)
    to = np.deg2rad(TARGET_LON_EDGES)
    want_lat = (np.sin(te[1:]) ** 2 - np.sin(te[:-1]) ** 2) / 2 / (np.sin(te[1:]) - np.sin(te[:-1]))
    want_lon = (np.sin(to[1:]) - np.sin(to[:-1])) / (to[1:] - to[:-1])
    want = want_lat[:, None] + want_lon[None, :]
    np.testing.assert_allclose(out[0], want, atol=1e-7)


def test_area_weighted_mean_conserved():
    """Integral over 80S..80N of the target equals that of the (piecewise constant) source."""
    g = era5_grid(0.25)
    rng = np.random.default_rng(1)
    field = rng.normal(280, 10, g.shape)
    out = ConservativeRegridder.for_grid(g)(field).astype(np.float64)
    # Reference in float64: each source cell's area inside the band, times its value.
    lb = np.deg2rad(np.clip(lat_bounds(g.lat), -80, 80))
    src_area = np.sin(lb[:, 1]) - np.sin(lb[:, 0])  # x 0.25 degrees of longitude each
    src_int = float((field * src_area[:, None]).sum() * 0.25)
    te = np.deg2rad(TARGET_LAT_EDGES)
    tgt_area = np.diff(np.sin(te))[:, None] * 2.0
    tgt_int = float((out * tgt_area).sum())
    assert tgt_int == pytest.approx(src_int, rel=1e-6)


def test_order_and_longitude_convention_do_not_matter():
    rng = np.random.default_rng(2)
    base = era5_grid(1.0)
    f = rng.normal(0, 1, base.shape)
    ref = ConservativeRegridder.for_grid(base)(f)
    asc = era5_grid(1.0, ascending=True)
    got = ConservativeRegridder.for_grid(asc)(f[::-1])
    np.testing.assert_array_equal(got, ref)
    g180 = era5_grid(1.0, lon180=True)
    order = np.argsort(np.mod(g180.lon, 360))
    f180 = np.empty_like(f)
    f180[:, order] = f
    got180 = ConservativeRegridder.for_grid(g180)(f180)
    np.testing.assert_allclose(got180, ref, rtol=1e-6)


def test_block_mean_would_be_wrong():
    """A plain 8x8 block mean differs from the conservative result on a gradient."""
    g = era5_grid(0.25)
    f = np.repeat(np.sin(np.deg2rad(g.lat))[:, None] * 100, g.shape[1], axis=1)
    out = ConservativeRegridder.for_grid(g)(f)
    rows = np.flatnonzero((g.lat > -80) & (g.lat <= 80))  # naive: 8 rows per cell
    naive = f[rows].reshape(80, 8, -1).mean(axis=1)[::-1, ::8]
    assert np.abs(naive - out).max() > 1e-3


def test_nan_rule_thresholds():
    g = era5_grid(1.0)
    f = np.full(g.shape, 10.0)
    # Target cell (lat index 40 = 1N, lon index 0 = 1E) covers source rows lat 0..2 (half
    # rows at 0 and 2) and columns 0..2 (half columns at 0 and 2). Mask column lon=0 and
    # lon=1: valid share = 0.25 (only the east half of column 2... i.e. half of lon=2).
    f[:, 0] = np.nan
    f[:, 1] = np.nan
    r = ConservativeRegridder.for_grid(g)
    strict = r(f, threshold=0.5)
    loose = r(f, threshold=0.0)
    assert np.isnan(strict[40, 0])
    assert loose[40, 0] == pytest.approx(10.0)
    assert np.isfinite(strict[40, 1])
    all_nan = np.full(g.shape, np.nan)
    assert np.isnan(r(all_nan, threshold=0.0)).all()


def test_each_step_regridded_on_its_own_and_matches_float64_reference():
    """A block mixing NaN-free and masked steps gives, step for step, what regridding each
    step alone gives, and equals a dense float64 matrix product (fracarea rule)."""
    g = era5_grid(1.0)
    rng = np.random.default_rng(3)
    block = (250 + 40 * rng.random((2, 3) + g.shape)).astype(np.float32)
    block[0, 1, 10:60, 100:200] = np.nan  # one masked step among NaN-free ones
    r = ConservativeRegridder.for_grid(g)
    out = r(block, threshold=0.5)
    assert out.shape == (2, 3, 80, 180) and out.dtype == np.float32
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out[i, j], r(block[i, j], threshold=0.5))
    wlat, wlon = r.lat.to_dense(g.shape[0]), r.lon.to_dense(g.shape[1])
    x = block[0, 1].astype(np.float64)
    valid = ~np.isnan(x)
    num = wlat @ np.where(valid, x, 0) @ wlon.T
    den = wlat @ valid @ wlon.T
    ref = np.where(den / r.area >= 0.5 - 1e-9, num / np.where(den > 0, den, 1), np.nan)
    np.testing.assert_array_equal(np.isnan(out[0, 1]), np.isnan(ref))
    np.testing.assert_allclose(out[0, 1], ref, rtol=2e-7, equal_nan=True)
    assert np.isnan(out[0, 1]).any() and not np.isnan(out[0, 0]).any()


@pytest.mark.parametrize("res, descending", [(0.25, True), (0.25, False), (1.0, True),
                                             (0.3, True), (0.75, False)])
def test_strided_rows_equal_gathered_rows(res, descending):
    """The latitude pass reads evenly spaced rows through a slice; it must give exactly what
    gathering the rows by index gives (0.3 and 0.75 degrees: rows unevenly spaced)."""
    g = era5_grid(res)
    if not descending:
        g = SourceGrid(g.lat[::-1].copy(), g.lon)
    r = ConservativeRegridder.for_grid(g)
    x = (250 + 40 * np.random.default_rng(5).random(g.shape)).astype(np.float32)
    strided = Work.for_shape(g.shape[1], r.lat.index)
    strided = Work(strided.acc, strided.product, strided.lat_rows, banded=False)
    gathered = Work(strided.acc.copy(), strided.product.copy(),
                     tuple(r.lat.index[:, k] for k in range(r.lat.index.shape[1])),
                     banded=False)
    a, b = np.empty((80, 180)), np.empty((80, 180))
    r.apply_step(x, a, strided)
    r.apply_step(x, b, gathered)
    np.testing.assert_array_equal(a, b)
    if res == 0.25:  # every term of a nesting grid is a slice
        assert all(isinstance(s, slice) for s in strided.lat_rows)


@pytest.mark.parametrize("res, descending, lon0, bands", [
    (0.25, False, 0.0, (True, True)),  # ERA5 as the reader hands it over
    (0.25, True, 0.0, (False, True)),  # rows in descending order: the sparse form
    (0.5, False, 0.0, (True, True)),
    (1.0, False, 0.0, (True, True)),
    (1.0, False, 0.5, (True, True)),  # cells edge to edge with the target's: no extra term
    (2.0, False, 1.0, (True, True)),  # one source cell per target cell
    (0.3, False, 0.0, (False, False)),  # cells do not nest: uneven windows
    (0.75, False, 0.0, (False, False)),
])
def test_band_form_equals_sparse_form(res, descending, lon0, bands):
    """Where the weights form even windows (:class:`Band`), the einsum over a reshaped view
    gives the sparse form's sums to float64 rounding, and both equal a dense float64 product;
    where they do not, there is no band form."""
    g = era5_grid(res)
    lat = g.lat if descending else g.lat[::-1].copy()
    g = SourceGrid(lat, g.lon + lon0)
    r = ConservativeRegridder.for_grid(g)
    assert (r.lat_band is not None, r.lon_band is not None) == bands
    x = (250 + 40 * np.random.default_rng(7).random(g.shape)).astype(np.float32)
    banded = Work.for_shape(g.shape[1], r.lat.index)
    sparse = Work(banded.acc.copy(), banded.product.copy(), banded.lat_rows, banded=False)
    a, b = np.empty((80, 180)), np.empty((80, 180))
    r.apply_step(x, a, banded)
    r.apply_step(x, b, sparse)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
    dense = r.lat.to_dense(g.shape[0]) @ x.astype(np.float64) @ r.lon.to_dense(g.shape[1]).T
    np.testing.assert_allclose(a, dense, rtol=1e-13, atol=0)
    # a lat-descending view, as the reader passes ascending fields: the same sums
    r_up = ConservativeRegridder.for_grid(SourceGrid(lat[::-1].copy(), g.lon))
    c = np.empty((80, 180))
    r_up.apply_step(x[::-1], c, Work.for_shape(g.shape[1], r_up.lat.index))
    np.testing.assert_allclose(c, dense, rtol=1e-13, atol=0)


def testas_slice():
    for ix in ([3, 5, 7, 9], [9, 6, 3, 0], [8, 4, 0], [2, 3, 5], [4, 4, 4], [7]):
        ix = np.array(ix)
        s = as_slice(ix)
        np.testing.assert_array_equal(np.arange(20)[s], ix)
    assert isinstance(as_slice(np.array([9, 6, 3, 0])), slice)
    assert not isinstance(as_slice(np.array([2, 3, 5])), slice)


def test_infinite_value_names_its_step():
    g = era5_grid(2.0)
    block = np.full((4,) + g.shape, 280.0, dtype=np.float32)
    block[2, 5, 7] = np.nan
    block[3, 5, 7] = -np.inf
    with pytest.raises(InfiniteValueError) as info:
        ConservativeRegridder.for_grid(g)(block)
    assert info.value.step == 3
    # A row poleward of 80 degrees does not contribute to the target: not read, no error.
    block[3, 5, 7] = 280.0
    block[3, 0, :] = np.inf  # the 90N row
    out = ConservativeRegridder.for_grid(g)(block)
    np.testing.assert_array_equal(out[3], out[0])


def test_adapter_reports_the_step_the_regridder_refused():
    """An inf poleward of 80 degrees is never read; the error names the step whose inf
    reaches the target (step 2), not the first step holding one anywhere (step 0)."""
    import xarray as xr

    from era5cache.regrid.adapter import regrid_dataarray
    from era5cache.regrid.quality import NonFiniteValueError

    g = era5_grid(2.0)
    block = np.full((4,) + g.shape, 280.0, dtype=np.float32)
    block[0, 0, :] = np.inf  # the 90N row
    block[2, 45, 10] = np.inf  # the equator
    da = xr.DataArray(block, dims=("time", "lat", "lon"), name="t2m",
                      coords={"lat": g.lat, "lon": g.lon}).chunk({"time": 4})
    with pytest.raises(NonFiniteValueError) as info:
        regrid_dataarray(da, ConservativeRegridder.for_grid(g)).compute()
    assert info.value.first == 2 and info.value.variable == "t2m"


def test_regional_grid_is_a_coverage_error():
    g = SourceGrid(np.linspace(23, 22, 5), np.linspace(75, 76, 5))
    with pytest.raises(CoverageError, match="does not cover"):
        ConservativeRegridder.for_grid(g)


def _write_nc(path, g: SourceGrid, fields: dict[str, np.ndarray]):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("latitude", g.lat.size)
        ds.createDimension("longitude", g.lon.size)
        v = ds.createVariable("latitude", "f8", ("latitude",))
        v[:] = g.lat
        v.units = "degrees_north"
        v = ds.createVariable("longitude", "f8", ("longitude",))
        v[:] = g.lon
        v.units = "degrees_east"
        v = ds.createVariable("time", "f8", ("time",))
        v[:] = 0
        v.units = "hours since 1900-01-01"
        for name, arr in fields.items():
            v = ds.createVariable(name, "f4", ("time", "latitude", "longitude"),
                                  fill_value=np.float32(np.nan))
            v[:] = arr[None]


@pytest.mark.cdo
@pytest.mark.parametrize("res", [pytest.param(0.25, marks=pytest.mark.slow), 1.0])
@pytest.mark.parametrize("area_min", [0.5, 0.0])
def test_matches_cdo_remapcon(cdo, tmp_path, res, area_min):
    g = era5_grid(res)
    rng = np.random.default_rng(3)
    la, lo = np.meshgrid(np.deg2rad(g.lat), np.deg2rad(g.lon), indexing="ij")
    smooth = (280 + 25 * np.cos(la) * np.sin(3 * lo)).astype(np.float32)
    noisy = (smooth + rng.normal(0, 2, g.shape)).astype(np.float32)
    masked = noisy.copy()
    masked[(np.sin(2 * lo) * np.cos(3 * la)) > 0.3] = np.nan
    src, dst = tmp_path / "src.nc", tmp_path / "dst.nc"
    _write_nc(src, g, {"smooth": smooth, "noisy": noisy, "masked": masked})
    run_cdo_remapcon(cdo, src, dst, tmp_path, area_min)
    r = ConservativeRegridder.for_grid(g)
    with netCDF4.Dataset(dst) as ds:
        np.testing.assert_allclose(ds["lat"][:], np.arange(-79, 80, 2))
        for name, arr in (("smooth", smooth), ("noisy", noisy), ("masked", masked)):
            ref = ds[name][0].filled(np.nan)
            got = r(arr, threshold=area_min)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=name)
            ok = ~np.isnan(ref)
            rel = np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])
            assert rel.max() <= 1e-5, (name, rel.max())

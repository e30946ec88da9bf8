"""The time axis (step, gaps, irregular steps) and the train/val/test periods."""

import numpy as np
import pytest

from era5cache.timeaxis import Period, Periods, analyse


def test_time_axis_step_gaps_monthly_irregular():
    t = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2020-01-03T00"),
                  np.timedelta64(6, "h")).astype("datetime64[s]")
    t = np.delete(t, [3, 4])
    ax = analyse(t)
    assert ax.step == "21600s" and len(ax.gaps) == 1 and ax.gaps[0].missing == 2
    assert ax.consecutive(t).tolist() == [True, True, False, True, True]
    months = np.array(["2020-01-01T12", "2020-02-01T12", "2020-03-01T12"], dtype="datetime64[s]")
    assert analyse(months).step == "1M" and not analyse(months).gaps
    odd = np.array(["2020-01-01", "2020-01-02", "2020-01-03T05"], dtype="datetime64[s]")
    assert analyse(odd).irregular


def test_periods_parse_mask_and_round_trip():
    p = Periods.from_json({"train": ["2019-01-01", "2019-01-02T00"], "val": None})
    t = np.array(["2018-12-31T18", "2019-01-01T00", "2019-01-02T00", "2019-01-02T06"],
                 dtype="datetime64[s]")
    assert p.mask("train", t).tolist() == [False, True, True, False]
    assert not p.mask("val", t).any() and not p.mask("test", t).any()
    assert Periods().mask("train", t).all()  # no train period: every step
    assert Periods.from_json(p.to_json()) == p
    assert Periods.from_attrs(p.to_attrs()) == p
    assert Period.parse("2019-01-01/2019-02-01") == Period("2019-01-01", "2019-02-01")
    with pytest.raises(ValueError, match="ends before it starts"):
        Period.parse(["2019-02-01", "2019-01-01"])
    with pytest.raises(ValueError, match="bad date"):
        Period.parse(["2019-13-01", "2020-01-01"])
    with pytest.raises(ValueError, match=r"^val: a period is \[start, end\]"):
        Periods.from_json({"val": "2019"})
    with pytest.raises(ValueError, match="split must be one of"):
        p.mask("all", t)

"""``era5cache sample``: write ERA5 NetCDF exactly as the CDS delivers it, or a Zarr store
laid out as ARCO-ERA5's or WeatherBench2's."""

from __future__ import annotations

import dataclasses

from ..config.sample import LAYOUTS, SampleSpec
from ..errors import ConfigError
from . import csv_list

_DEFAULT = SampleSpec()


def add(sub) -> None:
    s = sub.add_parser("sample", help="write a synthetic ERA5 sample in CDS layout")
    s.add_argument("--out", help="output folder (default: the recipe's sample.out)")
    s.add_argument("--layout", choices=LAYOUTS, default=_DEFAULT.layout,
                   help="CDS NetCDF files (new, legacy) or one Zarr store laid out as "
                        "ARCO-ERA5's (arco) or WeatherBench2's (wb2)")
    s.add_argument("--start", default=_DEFAULT.start)
    s.add_argument("--end", default=_DEFAULT.end)
    s.add_argument("--step", default=_DEFAULT.step)
    s.add_argument("--resolution", type=float, default=_DEFAULT.resolution)
    s.add_argument("--variables", type=csv_list, default=_DEFAULT.variables)
    s.add_argument("--levels", type=lambda t: tuple(int(x) for x in csv_list(t)),
                   default=_DEFAULT.levels)
    s.add_argument("--preliminary-steps", type=int, default=_DEFAULT.preliminary_steps,
                   help="mark the last N steps as preliminary ERA5T (expver 0005)")
    s.add_argument("--seed", type=int, default=_DEFAULT.seed)
    s.add_argument("--from-config", metavar="CONFIG",
                   help="take the sample settings from a recipe's `sample:` section")


def run(args) -> int:
    from ..sample.netcdf import write_sample

    if args.from_config:
        from ..config.recipe import load_preprocess_config

        spec = load_preprocess_config(args.from_config).sample
        if spec is None:
            raise ConfigError(f"{args.from_config}: has no `sample:` section")
    else:
        if not args.out:
            raise ConfigError("sample: --out is required (or give --from-config)")
        names = {f.name for f in dataclasses.fields(SampleSpec)}
        try:
            spec = SampleSpec(**{k: v for k, v in vars(args).items() if k in names})
        except ValueError as exc:
            raise ConfigError(f"command line: {exc}") from None
    out = args.out or spec.out
    if spec.layout in ("arco", "wb2"):
        from ..sample.stores import write_store

        path = write_store(out, spec)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"wrote a Zarr store in {spec.layout} layout ({size / 1e6:.1f} MB) to {path}")
        return 0
    files = write_sample(out, spec)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files ({total / 1e6:.1f} MB) to {out}")
    return 0

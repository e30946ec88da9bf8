"""What a finished job records: the all-NaN policy's verdict and the manifest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..config.recipe import PreprocessConfig
from ..errors import InputError
from ..format.checksum import INPUT_HASH, file_sha256, tree_sha256
from ..format.h5 import data_offset, storage_record
from ..format.layout import FORMAT_VERSION, H5_NAME, ZARR_NAME
from ..format.manifest import Manifest, TimeCoverage, input_record
from ..grid import NLAT, NLON
from ..read.timeselect import ACCUMULATION_ATTR
from .plan import StorePlan
from .state import Built, Planned


def all_nan_policy(plan: StorePlan, flags: dict[str, np.ndarray], channels: list[str],
                   cfg: PreprocessConfig) -> tuple[np.ndarray, list[dict]]:
    """(keep mask per Zarr step, records of skipped steps) from the all-NaN ``flags`` of
    each channel; :class:`InputError` under the default policy when any step of any channel
    is all NaN, and under any policy when a channel is all NaN at every step."""
    empty = [c for c in channels if flags[c].size and flags[c].all()]
    if empty:
        raise InputError(f"{plan.source[0]}: channel(s) {', '.join(empty)} hold no valid value "
                         f"in any of the {plan.times.size} time steps; drop them from the "
                         "variables")
    bad = np.zeros(plan.times.size, dtype=bool)
    for f in flags.values():
        bad |= f
    records = [{"time": str(plan.times[i]), "source": str(plan.source[i]),
                "channels": [c for c in channels if flags[c][i]]}
               for i in np.flatnonzero(bad)]
    if records and cfg.all_nan_steps == "fail":
        first = records[0]
        files = sorted({r["source"] for r in records})
        raise InputError(
            f"{first['source']}: {len(records)} all-NaN time step(s) (first {first['time']} "
            f"in {', '.join(first['channels'])}"
            + (f"; also in {len(files) - 1} other file(s)" if len(files) > 1 else "")
            + "); set all_nan_steps: skip (or --all-nan-steps skip) to record and skip them")
    return ~bad, records


def build_manifest(planned: Planned, built: Built, digests: dict[Path, str]) -> Manifest:
    """The manifest of the staged cache (``built``: its steps, the store's less the skipped
    all-NaN ones), ``digests`` the inputs' hashes."""
    cfg, inputs, base, plan = planned.cfg, planned.inputs, planned.base, planned.plan
    staging, times, axis = planned.staging, built.times, built.axis
    channels = list(planned.channels)
    records = [input_record(f, digests.get(f), INPUT_HASH) for f in inputs.files] + [
        s.to_json() for s in inputs.stores]
    if base is not None:
        new = {_input_key(r) for r in records}
        records = [r for r in base.inputs if _input_key(r) not in new] + records
    n_chunks = plan.n_chunks
    append = None
    if base is not None:
        append = {"previous_sha256": base.h5["sha256"], "replaced_steps": plan.replaced,
                  "kept_final_steps": plan.kept_final,
                  "new_steps": int((plan.new_index >= 0).sum() - plan.replaced)}
    return Manifest(
        format_version=FORMAT_VERSION,
        package_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        fingerprint=planned.fingerprint,
        inputs=tuple(records),
        config=cfg.to_json(),
        settings={**cfg.output_settings(), "variables": channels},
        channels=tuple(channels),
        shape=(int(times.size), len(channels), NLAT, NLON),
        time=TimeCoverage(
            start=str(times[0]) if times.size else None,
            end=str(times[-1]) if times.size else None,
            count=int(times.size), step=axis.step,
            gaps=tuple(g.to_json() for g in axis.gaps),
            duplicates_dropped=inputs.dropped_duplicates + (
                base.time.duplicates_dropped if base else 0),
            preliminary=tuple(str(t) for t in plan.preliminary),
            skipped_all_nan=tuple(built.skipped),
            zarr_count=int(plan.times.size)),
        periods=cfg.periods.to_json(),
        statistics=built.stats.to_json(channels),
        chunks={"steps": cfg.chunk_steps, "count": n_chunks,
                "complete": list(range(n_chunks)), "resumed": planned.resumed,
                "reused": int(plan.reuse.sum())},
        outputs={
            H5_NAME: {"size": staging.h5.stat().st_size, "sha256": file_sha256(staging.h5),
                      "data_offset": data_offset(staging.h5)} | storage_record(staging.h5),
            ZARR_NAME: {"files": tree_sha256(staging.zarr)},
        },
        append=append,
        accumulations=accumulations(plan) or None,
        complete=True,
    )


def accumulations(plan: StorePlan) -> dict[str, int]:
    """{channel: hours each value sums over} of the store's accumulated channels
    (:data:`era5cache.read.timeselect.ACCUMULATION_ATTR`)."""
    ds = plan.dataset
    return {str(c): int(ds[c].attrs[ACCUMULATION_ATTR]) for c in ds.data_vars
            if ACCUMULATION_ATTR in ds[c].attrs}


def _input_key(record: dict) -> tuple:
    """What identifies an input in the manifest: a file's path; a store's URL and selected
    range (an append of another range of one store adds a record)."""
    if "url" in record:
        return record["url"], tuple(sorted(record.get("selection", {}).items()))
    return (record["path"],)

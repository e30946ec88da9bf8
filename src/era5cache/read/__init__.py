"""Stage 1, read: ERA5 files as users hold them into one normalised, lazy xarray Dataset.

:mod:`.files` finds the inputs (paths, folders, globs, CDS ZIP archives); :mod:`.netcdf` opens
one file and normalises it (names, order, units, packing); :mod:`.blocks` sizes the read
blocks; :mod:`.expver` resolves final against preliminary data; :mod:`.combine` joins the
files (duplicates, products, one grid); :mod:`.channels` names and selects the channels.
"""

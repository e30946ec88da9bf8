"""Stage 2, regrid: first-order conservative remapping to the fixed 2-degree grid.

:mod:`.weights` builds each axis's weights, :mod:`.conservative` applies them to numpy
fields (the NaN rule lives there), :mod:`.adapter` maps that over lazy xarray/Dask data, and
:mod:`.quality` holds the value checks around it (infinite values, all-NaN steps).
"""

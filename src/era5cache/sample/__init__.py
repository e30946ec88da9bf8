"""The built-in sample: ERA5-like fields (:mod:`.fields`) written as the CDS delivers them
(:mod:`.netcdf`, what ``make preprocess`` reads), or straight into an HDF5 training cache for
machines without netCDF4, Dask or Zarr (:mod:`.synthetic`). Its settings are
:class:`era5cache.config.sample.SampleSpec`."""

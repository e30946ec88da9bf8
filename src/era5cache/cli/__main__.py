"""``python -m era5cache.cli``: the ``era5cache`` command."""

from . import entry

entry()

"""Typed, frozen configuration: one model per YAML file.

:mod:`.recipe` (``pipeline/era5_2deg.yaml``, the preprocessing job), :mod:`.trainer`
(``pipeline/ratransformer.yaml``), with :mod:`.model` (the network's shape) and
:mod:`.sample` (the built-in sample) nested in them. :mod:`.loading` reads YAML and turns a
validation error into one line naming the file and the key. Nothing is imported here: the
model's and the sample's dataclasses load without pydantic.
"""

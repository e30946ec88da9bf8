"""Errors that reach the user as one line: ``<file>: <problem>``."""

from __future__ import annotations


class Era5CacheError(Exception):
    """Base class: the message is complete and names the file and the problem."""


class InputError(Era5CacheError):
    """An input file is unreadable, inconsistent or unsuitable."""


class CacheError(Era5CacheError):
    """A cache folder is missing, incomplete, corrupted or of an unknown format."""


class ConfigError(Era5CacheError):
    """A configuration file or option is invalid."""


class ResourceError(Era5CacheError):
    """The job ran out of a resource (memory, disk) it was given."""

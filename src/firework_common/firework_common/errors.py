"""Errors that mean "the user asked for something wrong": the CLI prints them on one line, no traceback."""


class FireworkError(Exception):
    """Base of every user-facing error. The message names the problem and, where there is one, the fix."""


class ConfigError(FireworkError):
    """A configuration file or value is wrong."""


class UsageError(FireworkError):
    """A command-line argument is wrong."""


class EnvironmentSetupError(FireworkError):
    """A system library or resource the command needs is missing (e.g. EGL/OSMesa for rendering)."""


class DataError(FireworkError):
    """A recorded file (bag, manifest, checkpoint) is missing, unreadable or inconsistent."""

"""The SuiteError hierarchy: every error a user can fix by changing input, config or environment.

CLIs catch :class:`SuiteError`, print ``str(err)`` as one line and exit with ``err.exit_code``
(2 for bad input or config, 3 for a missing GPU); anything else is a bug (exit 1).
"""

from __future__ import annotations

from pathlib import Path


class SuiteError(Exception):
    """Base class of all user-facing errors of the suite.

    Parameters
    ----------
    message : str
        One clear sentence saying what is wrong and, where possible, what to do.
    """

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DataFormatError(SuiteError):
    """A data file violates the XC text format (or an npz cache is corrupt).

    Parameters
    ----------
    path : str or Path
        The offending file; only its name appears in the message.
    line : int or None
        1-based line number (None when the problem is not tied to a line, e.g. a bad cache).
    field : str or None
        The offending token as it appears in the file (None when there is none).
    message : str
        What is wrong with it.

    Examples
    --------
    >>> str(DataFormatError("train.txt", 17, "3:abc", "malformed feature 'f:v'"))
    "train.txt, line 17, field '3:abc': malformed feature 'f:v'"
    """

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.detail = message
        parts = [self.path.name]
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field {field!r}")
        super().__init__(f"{', '.join(parts)}: {message}")


class ConfigError(SuiteError):
    """An invalid configuration value, preset, option or dataset name."""


class ChecksumError(SuiteError):
    """A file's checksum, size or content check does not match what is expected."""


class DownloadError(SuiteError):
    """A download failed (no network, dead link, quota) or an archive is unsafe to extract."""


class GPUUnavailableError(SuiteError):
    """A GPU was requested but none is visible; exit code 3."""

    exit_code = 3

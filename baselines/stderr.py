"""Holding back what native libraries write to the process's stderr (file descriptor 2).

TensorFlow prints start-up lines from C++ before its log level (``TF_CPP_MIN_LOG_LEVEL``)
applies, and a CUDA build prints driver-probe failures when it lists devices on a machine without
a GPU. ``python -m baselines doctor`` answers in its own words (one line for ``--device gpu``
without a GPU), so it holds these writes back and shows them on request (``--debug``). Python's
``sys.stderr`` writes go to the same descriptor and are held too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["held_stderr"]


@contextlib.contextmanager
def held_stderr(show: bool = False) -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the duration of the block.

    Parameters
    ----------
    show : bool
        Write what was held back to stderr when the block ends (or fails).

    Yields
    ------
    list of str
        Filled with the held lines when the block ends.
    """
    held: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            held.extend(text.splitlines())
            if show and text:
                sys.stderr.write(text)
                sys.stderr.flush()

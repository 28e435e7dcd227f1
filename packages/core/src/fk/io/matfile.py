"""MATLAB ``.mat`` writing that gives the same bytes for the same arrays.

``scipy.io.savemat`` stamps "Created on: <time.asctime()>" into the 116-byte text
header of every v5 file, so two identical results never hash alike (and a resumed
run would differ from an uninterrupted one). fk writes the same header without the
time; MATLAB, scipy and Deep3D's readers ignore that text.
"""

from __future__ import annotations

import io
import os
from typing import Any

HEADER_TEXT_BYTES = 116


def savemat_bytes(arrays: dict[str, Any], **savemat_kwargs: Any) -> bytes:
    """``scipy.io.savemat(arrays)`` as bytes, with a header that carries no time stamp."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, arrays, **savemat_kwargs)
    data = bytearray(buf.getvalue())
    if data[:10] == b"MATLAB 5.0":  # v5 (the default); v4 files have no text header
        text = f"MATLAB 5.0 MAT-file Platform: {os.name}, Created by: fk".encode("ascii")
        data[:HEADER_TEXT_BYTES] = text.ljust(HEADER_TEXT_BYTES, b" ")
    return bytes(data)

"""File and archive names of the FFHQ/LPFF dataset layouts (the training loaders rely on them).

- EG3D layout and every zip archive: ``{ID//1000:05d}/img{ID:08d}.png``.
- FFHQ's native StyleGAN layout (images1024x1024): ``{(ID//1000)*1000:05d}/{ID:05d}.png``.
"""

from __future__ import annotations

import re

EG3D_NAME = re.compile(r"^(\d{5})/img(\d{8})\.png$")
FFHQ_NATIVE_NAME = re.compile(r"^(\d{5})/(\d{5,})\.png$")


def archive_name(index: int) -> str:
    """Name of image ``index`` inside a dataset zip, and in the merged EG3D folder."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def ffhq_native_name(index: int) -> str:
    """FFHQ's own StyleGAN layout: ``70000/70123.png``."""
    return f"{(index // 1000) * 1000:05d}/{index:05d}.png"


def archive_names(indices) -> list[str]:
    return [archive_name(int(i)) for i in indices]


def index_of_archive_name(name: str) -> int | None:
    """The ID in ``00012/img00012345.png`` if the name follows the layout (folder checked too)."""
    m = EG3D_NAME.match(name)
    if not m or int(m.group(1)) != int(m.group(2)) // 1000:
        return None
    return int(m.group(2))


def index_of_ffhq_native_name(name: str) -> int | None:
    m = FFHQ_NATIVE_NAME.match(name)
    if not m or int(m.group(1)) != (int(m.group(2)) // 1000) * 1000:
        return None
    return int(m.group(2))

"""Image and mesh I/O. Import-light: numpy and (lazily) Pillow, never torch.

- :func:`load_image` reads any photo as an upright (H, W, 3) uint8 RGB array;
- :func:`as_rgb` turns a path, PIL image or array into that array;
- :func:`save_image` writes one atomically;
- :mod:`fk.io.mesh` holds the :class:`~fk.io.mesh.Mesh` type and OBJ/PLY/GLB I/O.
"""

from fk.io.image import DEFAULT_MAX_PIXELS, as_rgb, load_image, save_image

__all__ = ["DEFAULT_MAX_PIXELS", "as_rgb", "load_image", "save_image"]

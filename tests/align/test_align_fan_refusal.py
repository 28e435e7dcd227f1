"""Issue 11 item 12: a face-alignment weight file that is not what it should be is refused in one
line naming that file, never with torch's advice to turn weights_only off."""

from __future__ import annotations

import os

import pytest
import torch

from fk.errors import InputError

pytest.importorskip("face_alignment")


def _load(fan, s3fd):
    from fk_align.fan_detect import load_face_alignment

    load_face_alignment.cache_clear()
    return load_face_alignment(str(fan), str(s3fd))


def test_a_cut_2dfan_file_is_named(tmp_path):
    fan, s3fd = tmp_path / "2DFAN4.pth.tar", tmp_path / "s3fd.pth"
    fan.write_bytes(b"PK\x03\x04 cut short")
    torch.save({"conv1_1.weight": torch.zeros(1)}, s3fd)
    with pytest.raises(InputError) as err:
        _load(fan, s3fd)
    assert str(err.value).startswith(f"{fan}: this 2DFAN-4 TorchScript file is truncated or not a torch file")
    assert "weights_only" not in f"{err.value} {err.value.hint}" and "\n" not in str(err.value)


def test_an_s3fd_file_holding_code_is_named_and_never_run(tmp_path):
    fan, s3fd, marker = tmp_path / "2DFAN4.pth.tar", tmp_path / "s3fd.pth", tmp_path / "ran"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), fan)

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"conv1_1.weight": Evil()}, s3fd)
    with pytest.raises(InputError) as err:
        _load(fan, s3fd)
    assert str(err.value).startswith(f"{s3fd}: this S3FD weight file holds Python objects or code")
    assert "weights_only" not in f"{err.value} {err.value.hint}" and not marker.exists()

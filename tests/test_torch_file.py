"""The opcode scan that sizes a torch.save file before torch.load allocates it."""

import zipfile

import pytest
import torch

from translate.core import torch_file
from translate.training.checkpoint import rng_state


def test_declared_sizes_match_what_torch_writes(tmp_path):
    """The scan must agree with torch's own records, or good files would be refused:
    several dtypes (uint16 is declared as untyped bytes), two views of one storage, and a
    training state's nesting (memoised globals and strings), in both formats."""
    base = torch.arange(12.0)
    state = {
        "model": {"a": base[:6], "b": base[6:], "h": torch.zeros(3, dtype=torch.float16)},
        "other": [torch.zeros(5, dtype=torch.uint16), torch.ones(2, dtype=torch.bfloat16)],
        "rng": rng_state(),
        "step": 3,
    }
    torch.save(state, tmp_path / "zip.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt") as archive:
        records = {
            i.filename.rpartition("/")[2]: i.file_size
            for i in archive.infolist()
            if i.filename.rpartition("/")[0].endswith("/data")
        }
    scan = torch_file.scan_file(tmp_path / "zip.pt")
    assert scan.complete and scan.storages == records
    assert records["0"] == 12 * 4  # the views share one storage
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    legacy = torch_file.scan_file(tmp_path / "legacy.pt")
    assert sum(legacy.storages.values()) == sum(records.values())


def test_a_pickle_declaring_a_huge_argument_is_refused_without_allocating_it(tmp_path):
    """14 bytes whose BINBYTES8 opcode declares 2**40 bytes: one line, no MemoryError."""
    path = tmp_path / "bomb.pth"
    path.write_bytes(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc")
    assert not torch_file.scan_file(path).complete
    with pytest.raises(ValueError, match=r"bomb\.pth: not a readable torch checkpoint"):
        torch_file.load(path)

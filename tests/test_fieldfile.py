import io
import json
import zipfile

import numpy as np
import pytest

import warpfields as wf
from warpfields.cli import main
from warpfields.errors import InputError
from warpfields.fields.base import Field, Normalization
from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.fields.mesh_sdf import MeshSDF
from warpfields.io import fieldfile
from warpfields.io.fieldfile import FIELD_KINDS, load_field, read_header, register_kind, save_field
from warpfields.io.mesh import Mesh


class FakeField(Field):
    """A field kind that exists only for these tests: two float32 arrays and metadata."""

    def __init__(self, arrays, normalization=None, metadata=None):
        super().__init__(dim=3, kind="fake", normalization=normalization, metadata=dict(metadata or {}))
        self._arrays = arrays

    def _make_struct(self, device):
        raise NotImplementedError

    def header(self):
        return {**super().header(), "metadata": self.metadata}

    def arrays(self):
        return dict(self._arrays)

    @classmethod
    def from_parts(cls, header, arrays):
        return cls(
            {"table": arrays["table"], "weights": arrays["weights"]},
            Normalization.from_dict(header["normalization"]),
            header["metadata"],
        )


@pytest.fixture
def fake_kind(monkeypatch):
    monkeypatch.setitem(FIELD_KINDS, "fake", FakeField)


def fake_field():
    rng = np.random.default_rng(0)
    table = rng.normal(size=1000).astype(np.float32)
    table[:3] = [np.float32(1e-45), -0.0, np.float32(3.4e38)]  # subnormal, signed zero, near max
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    normalization = Normalization(center=(0.1, -0.2, 0.3), scale=1.2345678901234567)
    return FakeField({"table": table, "weights": weights}, normalization, {"training": {"seed": 3, "loss": 0.1}})


def test_analytic_round_trip_and_words(tmp_path):
    path = tmp_path / "torus.wfield"
    field = wf.torus(0.6, 0.15, center=(0.1, 0.2, 0.3))
    assert save_field(field, path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torus.wfield"]
    loaded = load_field(path)
    assert loaded.header() == field.header() and loaded.shape == "torus"
    assert read_header(path)["format_version"] == fieldfile.FORMAT_VERSION
    for word, dim in [("sphere", 3), ("torus", 3), ("circle", 2)]:
        assert load_field(word).shape == word and load_field(word).dim == dim


def test_registered_kind_round_trip_is_bit_exact(tmp_path, fake_kind):
    field = fake_field()
    path = tmp_path / "fake.wfield"
    save_field(field, path)
    loaded = load_field(path)
    assert isinstance(loaded, FakeField)
    for name, array in field.arrays().items():
        assert loaded.arrays()[name].dtype == array.dtype and loaded.arrays()[name].shape == array.shape
        assert loaded.arrays()[name].tobytes() == array.tobytes()
    assert loaded.normalization == field.normalization and loaded.metadata == field.metadata
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["__header__", "table", "weights"]


def test_register_kind(monkeypatch):
    monkeypatch.setattr(fieldfile, "FIELD_KINDS", dict(FIELD_KINDS))
    register_kind("fake", FakeField)
    assert fieldfile.FIELD_KINDS["fake"] is FakeField


def test_hybrid_round_trip(tmp_path):
    config = preset_config("tiny", dim=2, encoding="dense")
    field = HybridField(config, seed=5, metadata={"training": {"seed": 5}})
    save_field(field, tmp_path / "h.wfield")
    loaded = load_field(tmp_path / "h.wfield")
    assert loaded.header() == field.header()
    assert all(loaded.arrays()[k].tobytes() == a.tobytes() for k, a in field.arrays().items())


def write_npz(path, header=None, **arrays):
    entries = dict(arrays)
    if header is not None:
        text = header if isinstance(header, str) else json.dumps(header)
        entries["__header__"] = np.frombuffer(text.encode(), dtype=np.uint8)
    with open(path, "wb") as out:
        np.savez(out, **entries)
    return path


GOOD = {"format": "warpfields-field", "format_version": 1, "kind": "fake", "dim": 3}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("hello"), "not an npz archive"),
        (lambda p: np.save(open(p, "wb"), np.zeros(3)), "not an npz archive"),
        (lambda p: write_npz(p, table=np.zeros(3)), "no __header__ entry"),
        (lambda p: write_npz(p, "{not json"), "not valid JSON"),
        (lambda p: write_npz(p, "[1, 2]"), "not a JSON object"),
        (lambda p: write_npz(p, {**GOOD, "format": "other"}), "format 'other'"),
        (lambda p: write_npz(p, {**GOOD, "format_version": 2}), "format version 2"),
        (lambda p: write_npz(p, {k: v for k, v in GOOD.items() if k != "kind"}), "names no field kind"),
        (lambda p: write_npz(p, {**GOOD, "kind": "mystery"}), "unknown field kind 'mystery'"),
        (
            lambda p: write_npz(p, {**GOOD, "normalization": {"center": [0, 0, 0], "scale": 1}, "metadata": {}}),
            "missing entry 'table'",
        ),
    ],
)
def test_bad_field_files(tmp_path, fake_kind, make, message):
    path = tmp_path / "bad.wfield"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        load_field(path)
    assert "bad.wfield" in str(info.value)


def test_truncated_and_damaged_files(tmp_path, fake_kind):
    path = tmp_path / "f.wfield"
    save_field(fake_field(), path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.wfield"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.wfield.*truncated or damaged"):
        load_field(truncated)
    # flip bytes inside the stored table: the zip's CRC check fails on reading it
    damaged = tmp_path / "damaged.wfield"
    offset = data.index(b"table.npy") + 200
    damaged.write_bytes(data[:offset] + bytes(b ^ 0xFF for b in data[offset : offset + 64]) + data[offset + 64 :])
    with pytest.raises(InputError, match="damaged.wfield.*damaged or truncated"):
        load_field(damaged)
    with pytest.raises(InputError, match="file not found"):
        load_field(tmp_path / "absent.wfield")
    with pytest.raises(InputError, match="not a readable file"):
        load_field(tmp_path)


def test_save_errors_leave_nothing(tmp_path, fake_kind):
    with pytest.raises(InputError, match="does not exist"):
        save_field(wf.sphere(), tmp_path / "missing" / "f.wfield")
    triangle = Mesh(np.eye(3), np.array([[0, 1, 2]], dtype=np.int32))
    with pytest.raises(InputError, match="mesh field cannot be saved"):
        save_field(MeshSDF(triangle), tmp_path / "m.wfield")
    with pytest.raises(InputError, match="array 'table' \\(object\\) cannot be stored"):
        save_field(FakeField({"table": np.array([{}], dtype=object)}), tmp_path / "o.wfield")
    assert list(tmp_path.iterdir()) == []


def test_info_command(tmp_path, fake_kind, capsys):
    path = tmp_path / "fake.wfield"
    save_field(fake_field(), path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kind:          fake" in out and "scale 1.2345678901234567" in out
    assert "seed: 3" in out and "weights  float32  (16, 8)" in out
    assert "parameters:    1128" in out
    assert main(["info", "circle"]) == 0
    assert "dimension:     2" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "absent.wfield")]) == 2
    assert "absent.wfield" in capsys.readouterr().err


def test_files_are_zip_archives(tmp_path):
    path = tmp_path / "s.wfield"
    save_field(wf.sphere(), path)
    assert zipfile.is_zipfile(path)


def fake_file(path, normalization=None, **arrays):
    """A fake-kind field file with ``arrays`` replacing the defaults (``table`` may be raw .npy bytes)."""
    header = {**GOOD, "normalization": normalization or {"center": [0, 0, 0], "scale": 1}, "metadata": {}}
    entries = {"table": np.zeros(4, dtype=np.float32), "weights": np.zeros((2, 2), dtype=np.float32), **arrays}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__header__.npy", _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)))
        for name, array in entries.items():
            archive.writestr(f"{name}.npy", array if isinstance(array, bytes) else _npy(array))
    return path


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _declared(shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


@pytest.mark.parametrize(
    "contents, message",
    [
        ({"normalization": {"center": [0, 0, 0], "scale": 0}}, "normalization: scale must be a finite number > 0"),
        ({"normalization": {"center": [0, 0, 0], "scale": "nan"}}, "normalization: scale must be a finite number"),
        ({"normalization": {"center": [0, 0], "scale": 1}}, r"center \[0.0, 0.0\] has 2 coordinates, expected 3"),
        (
            {"table": _declared((2**40,))},
            r"entry 'table' declares \(1099511627776,\) float32 \(4.0 TiB\) but holds 64 B; the file is damaged",
        ),
        ({"table": np.array([0.0, np.nan, 1.0], dtype=np.float32)}, "array 'table' holds 1 non-finite values"),
        ({"weights": np.full((2, 2), np.inf, dtype=np.float32)}, "array 'weights' holds 4 non-finite values"),
    ],
)
def test_damaged_contents_are_named_before_use(tmp_path, fake_kind, contents, message):
    """These loaded (a NaN table queried as a constant with zero normals), divided by zero, failed to broadcast,
    or tried to allocate 4 TiB."""
    path = fake_file(tmp_path / "damaged.wfield", **contents)
    with pytest.raises(InputError, match=message) as info:
        load_field(path)
    assert "damaged.wfield" in str(info.value)


def test_a_field_with_non_finite_parameters_is_not_saved(tmp_path, fake_kind):
    field = FakeField({"table": np.array([1.0, np.nan], dtype=np.float32), "weights": np.zeros(2, np.float32)})
    with pytest.raises(InputError, match="cannot save the field; array 'table' holds 1 non-finite values"):
        save_field(field, tmp_path / "f.wfield")
    assert list(tmp_path.iterdir()) == []

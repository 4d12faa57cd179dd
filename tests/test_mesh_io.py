import sys
import warnings

import numpy as np
import pytest
import trimesh

from warpfields.errors import InputError, InputWarning
from warpfields.io.mesh import Mesh, bunny_path, load_mesh, normalization_for

OCTAHEDRON = trimesh.creation.icosahedron()


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("extension", ["obj", "ply", "stl", "off"])
def test_trimesh_formats_round_trip(tmp_path, extension):
    path = tmp_path / f"ico.{extension}"
    OCTAHEDRON.export(path)
    mesh = load_mesh(path)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int32
    assert mesh.faces.shape == (20, 3)
    # STL stores triangle corners, so compare the triangles' corner coordinates, not the indices.
    expected = np.sort(OCTAHEDRON.vertices[OCTAHEDRON.faces].reshape(-1, 3), axis=0)
    assert np.allclose(np.sort(mesh.vertices[mesh.faces].reshape(-1, 3), axis=0), expected, atol=1e-6)
    assert mesh.name == "ico"


def _usda(tmp_path, body, name="m.usda"):
    return _write(tmp_path, name, "#usda 1.0\n" + body)


QUAD_PRIM = """
def Xform "root" {{
    double3 xformOp:translate = (1, 2, 3)
    double3 xformOp:scale = (2, 2, 2)
    uniform token[] xformOpOrder = ["xformOp:translate", "xformOp:scale"]
    def Mesh "{name}" {{
        point3f[] points = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)]
        int[] faceVertexCounts = [4, 3]
        int[] faceVertexIndices = [0, 1, 2, 3, 0, 1, 4]
    }}
}}
"""


def test_usd_fan_triangulation_and_world_transform(tmp_path):
    path = _usda(tmp_path, QUAD_PRIM.format(name="quad") + QUAD_PRIM.format(name="second").replace('"root"', '"b"'))
    mesh = load_mesh(path)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 4]]
    local = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)], dtype=float)
    assert np.allclose(mesh.vertices, local * 2 + [1, 2, 3])
    assert load_mesh(path, prim="/b/second").faces.shape == (3, 3)


def test_bunny_word_loads_warps_asset():
    assert bunny_path().is_file()
    mesh = load_mesh("bunny")
    assert len(mesh.faces) > 1000 and np.all(np.isfinite(mesh.vertices))


def test_normalization_fits_bounding_box_diagonal():
    mesh = Mesh(np.array([[0, 0, 0], [2, 0, 0], [0, 4, 0], [0, 0, 6.0]]), np.array([[0, 1, 2], [0, 2, 3]], np.int32))
    normalization = normalization_for(mesh)
    assert np.allclose(normalization.center, [1, 2, 3])
    normalized = mesh.normalized(normalization).vertices
    lo, hi = normalized.min(axis=0), normalized.max(axis=0)
    assert np.isclose(np.linalg.norm(hi - lo), 1.9)
    assert np.allclose(lo + hi, 0)
    assert np.allclose(normalization.from_field(normalized), mesh.vertices)


OBJ_TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
USD_TRIANGLE = """#usda 1.0
def Mesh "tri" {{
    point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    int[] faceVertexCounts = [3]
    int[] faceVertexIndices = [{indices}]
}}
"""


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("empty.obj", "", "empty"),
        ("nofaces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no triangle faces"),
        ("nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "NaN"),
        ("inf.off", "OFF\n3 1 0\n0 0 inf\n1 0 0\n0 1 0\n3 0 1 2\n", "NaN or infinite"),
        ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "face ind"),
        ("range.usda", USD_TRIANGLE.format(indices="0, 1, 7"), "face indices must lie in"),
        ("counts.usda", USD_TRIANGLE.format(indices="0, 1"), "inconsistent face vertex counts"),
        ("nanpoint.usda", USD_TRIANGLE.format(indices="0, 1, 2").replace("(0, 1, 0)", "(0, nan, 0)"), "NaN"),
        ("mesh.xyz", OBJ_TRIANGLE, "unknown extension"),
        ("garbage.ply", "ply\nformat nonsense\n", "not a mesh that could be read"),
        ("nomesh.usda", '#usda 1.0\ndef Xform "root" {\n}\n', "no Mesh prim"),
        ("broken.usda", "#usda 1.0\ndef Mesh {{{\n", "could not be"),
    ],
)
def test_bad_meshes_raise_input_error_naming_the_file(tmp_path, name, text, message):
    path = _write(tmp_path, name, text)
    with pytest.raises(InputError, match=message) as info:
        load_mesh(path)
    assert name in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_mesh(tmp_path / "absent.obj")
    with pytest.raises(InputError, match="not a readable file"):
        load_mesh(tmp_path)


def test_usd_prim_path_errors(tmp_path):
    path = _usda(tmp_path, QUAD_PRIM.format(name="quad"))
    with pytest.raises(InputError, match="'/nope' not found"):
        load_mesh(path, prim="/nope")
    with pytest.raises(InputError, match="not a Mesh"):
        load_mesh(path, prim="/root")
    with pytest.raises(InputError, match="only applies to USD"):
        load_mesh(_write(tmp_path, "t.obj", OBJ_TRIANGLE), prim="/root")


def test_shared_sphere_asset(shared_assets):
    mesh = load_mesh(shared_assets / "sphere.obj")
    assert np.allclose(np.linalg.norm(mesh.vertices, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("extension", ["obj", "stl", "off", "ply"])
def test_random_bytes_are_not_a_mesh(tmp_path, monkeypatch, extension):
    """Without charset_normalizer (trimesh's guess at a text encoding) this said "No module named ..."."""
    monkeypatch.setitem(sys.modules, "charset_normalizer", None)
    path = tmp_path / f"junk.{extension}"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match=f"junk.{extension}': not a mesh") as error:
        load_mesh(path)
    assert "module" not in str(error.value)


def _box_faces():
    box = trimesh.creation.box()
    return np.asarray(box.vertices), np.asarray(box.faces)


def _obj(tmp_path, name, vertices, faces):
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return _write(tmp_path, name, "\n".join(lines) + "\n")


def test_open_meshes_warn_how_the_sign_is_decided(tmp_path):
    vertices, faces = _box_faces()
    open_box = _obj(tmp_path, "open_box.obj", vertices, faces[:-2])
    quad = _obj(tmp_path, "quad.obj", [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [(0, 1, 2), (0, 2, 3)])
    triangle = _write(tmp_path, "triangle.obj", OBJ_TRIANGLE)
    for path, edges in ((open_box, 4), (quad, 4), (triangle, 3)):
        with pytest.warns(InputWarning, match=rf"{path.name}' is not closed \({edges} edges.*winding number"):
            load_mesh(path)


def test_closed_meshes_do_not_warn_even_with_split_vertices(tmp_path):
    """A closed surface whose vertices are split along seams (texture coordinates) is still closed."""
    vertices, faces = _box_faces()
    split_vertices = vertices[faces.ravel()]
    split_faces = np.arange(len(split_vertices)).reshape(-1, 3)
    for path in (_obj(tmp_path, "box.obj", vertices, faces), _obj(tmp_path, "seams.obj", split_vertices, split_faces)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_mesh(path)
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    with pytest.warns(InputWarning, match="not closed"):
        load_mesh(_obj(tmp_path, "flipped.obj", vertices, flipped))

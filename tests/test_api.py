"""The public API is what the public modules list in ``__all__``; every function, class, Warp function and Warp
struct in it, and every public method and property of its classes, has a docstring (the API reference in docs/
is built from them)."""

import importlib
import inspect

import pytest
import warp as wp

PUBLIC_MODULES = [
    "warpfields",
    "warpfields.errors",
    "warpfields.fields",
    "warpfields.fields.hybrid",
    "warpfields.fields.mesh_sdf",
    "warpfields.geometry",
    "warpfields.io.fieldfile",
    "warpfields.io.mesh",
    "warpfields.io.usd",
    "warpfields.newton",
    "warpfields.ops",
    "warpfields.torch",
    "warpfields.torch.finetune",
    "warpfields.torch.train",
]

WARP_FUNCTION = type(wp.normalize)


def docstring(value) -> str | None:
    """The object's own docstring; None where it has none, or only the one a dataclass makes up."""
    if isinstance(value, WARP_FUNCTION):
        return value.func.__doc__
    if hasattr(value, "cls") and hasattr(value, "vars"):  # a @wp.struct
        return value.cls.__doc__
    doc = value.__doc__
    if inspect.isclass(value) and doc and doc.startswith(f"{value.__name__}("):
        return None
    return doc


def documentable(value) -> bool:
    return (
        inspect.isclass(value)
        or inspect.isfunction(value)
        or inspect.ismodule(value)
        or isinstance(value, WARP_FUNCTION)
        or (hasattr(value, "cls") and hasattr(value, "vars"))
    )


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_exists_and_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no docstring"
    assert len(set(module.__all__)) == len(module.__all__), f"{module_name}.__all__ repeats a name"
    undocumented = []
    for name in module.__all__:
        value = getattr(module, name)
        if documentable(value) and not (docstring(value) or "").strip():
            undocumented.append(name)
    assert undocumented == [], f"{module_name}: public names without a docstring"


def public_classes() -> list[type]:
    classes = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and value.__module__.startswith("warpfields"):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return [classes[name] for name in sorted(classes)]


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__qualname__)
def test_every_public_method_and_property_has_a_docstring(cls):
    """An override may take its docstring from the method it overrides (as the reference shows it)."""
    undocumented = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            doc = member.__doc__ or inspect.getdoc(getattr(cls, name, None))
        elif inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)):
            doc = inspect.getdoc(getattr(cls, name))
        else:
            continue
        if not (doc or "").strip():
            undocumented.append(name)
    assert undocumented == [], f"{cls.__qualname__}: public methods without a docstring"

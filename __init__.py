"""The repository's root folder, imported as a package only by mistake or by tools.

Python running in the folder that holds a clone named ``warpfields`` finds the clone before the
installed package (an editable install's finder comes after the path search), and without this file
it would import the clone's root as an empty namespace package: ``module 'warpfields' has no
attribute 'AnyField'``. Imported under that name, this file loads the package from its folder here
instead (the same files an editable install uses, with ``sims/`` as ``warpfields.sims``). Under any
other name (pytest imports it as the clone folder's name while collecting) it does nothing.
"""

if __name__ == "warpfields":
    import importlib.util
    import sys
    from pathlib import Path

    _root = Path(__file__).resolve().parent
    # The second location holds sims/, which ships as warpfields.sims.
    _spec = importlib.util.spec_from_file_location(
        __name__,
        _root / "warpfields" / "__init__.py",
        submodule_search_locations=[str(_root / "warpfields"), str(_root)],
    )
    _package = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _package  # what ``import warpfields`` returns once this file has run
    _spec.loader.exec_module(_package)

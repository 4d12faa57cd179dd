"""Subcommands of the ``warpfields`` CLI, one module each (see ``warpfields.cli``)."""

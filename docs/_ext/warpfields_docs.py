"""Sphinx directives for warpfields' reference: a module's public API (its ``__all__``, Warp functions and
structs included, which autodoc does not recognise) and a ``warpfields`` command's arguments, read from its parser.
"""

import argparse
import importlib
import inspect

import warp as wp
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _indented(text: str) -> list[str]:
    return ["   " + line if line else "" for line in inspect.cleandoc(text or "").splitlines()]


def _warp_function(name: str, function) -> list[str]:
    signature = inspect.signature(function.func)
    if len(function.user_overloads) > 1:  # the first overload's types would read as the only ones
        signature = "(" + ", ".join(signature.parameters) + ")"
    return [f".. py:function:: {name}{signature}", "", *_indented(function.func.__doc__), ""]


def _warp_struct(name: str, struct) -> list[str]:
    lines = [f".. py:class:: {name}", "", *_indented(struct.cls.__doc__), ""]
    for field, var in struct.vars.items():
        type_name = getattr(var.type, "__name__", str(var.type))
        lines += [f"   .. py:attribute:: {field}", f"      :type: {type_name}", ""]
    return lines


def _data(name: str, value) -> list[str]:
    return [f".. py:data:: {name}", f"   :value: {value!r}", ""]


def module_api(module_name: str, documented_in: list[str]) -> list[str]:
    """reST for every name in the module's ``__all__``, in that order, except those re-exported from the modules
    ``documented_in`` (documented on their own pages)."""
    module = importlib.import_module(module_name)
    lines = [f".. py:module:: {module_name}", "", *inspect.cleandoc(module.__doc__ or "").splitlines(), ""]
    reexported = {name for other in documented_in for name in importlib.import_module(other).__all__}
    if reexported:
        links = ", ".join(f":py:mod:`{other}`" for other in documented_in)
        lines += [f"It re-exports the public names of {links}.", ""]
    lines += [f".. py:currentmodule:: {module_name}", ""]
    for name in module.__all__:
        if name in reexported:
            continue
        value = getattr(module, name)
        if isinstance(value, type(wp.normalize)):
            lines += _warp_function(name, value)
        elif hasattr(value, "cls") and hasattr(value, "vars"):
            lines += _warp_struct(name, value)
        elif inspect.isclass(value):
            lines += [f".. autoclass:: {module_name}.{name}", "   :members:", ""]
        elif inspect.isfunction(value):
            lines += [f".. autofunction:: {module_name}.{name}", ""]
        elif inspect.ismodule(value):
            lines += [f"``{name}``: the module :py:mod:`{value.__name__}`.", ""]
        else:
            lines += _data(name, value)
    return lines


class ModuleAPI(SphinxDirective):
    """``.. warpfields-module:: warpfields.ops``: the module's docstring and its public names."""

    required_arguments = 1
    option_spec = {"documented-in": directives.unchanged}

    def run(self):
        documented_in = self.options.get("documented-in", "").split()
        return self._parse("\n".join(module_api(self.arguments[0], documented_in)))

    def _parse(self, text: str):
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(text.splitlines(), source=self.arguments[0]), container)
        return container.children


def _commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _subparser(name: str) -> tuple[argparse.ArgumentParser, str]:
    """The parser of ``warpfields`` or of one of its commands, and its description."""
    from warpfields.cli import build_parser

    parser = build_parser()
    if name == "warpfields":
        return parser, parser.description
    if name not in _commands(parser).choices:
        raise ValueError(f"no warpfields command named {name!r}")
    return _child(parser, name)


def _child(parser: argparse.ArgumentParser, name: str) -> tuple[argparse.ArgumentParser, str]:
    commands = _commands(parser)
    summary = next((a.help for a in commands._choices_actions if a.dest == name), None)
    return commands.choices[name], commands.choices[name].description or summary or ""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", ")", ":")) else text + "."


def command_rst(parser: argparse.ArgumentParser, description: str, nested: bool = False) -> list[str]:
    """reST for one command: its description, usage, every argument with its help, choices and default, and
    (nested) a section per subcommand."""
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines = [_sentence(description), "", f".. program:: {parser.prog}", "", ".. code-block:: text", ""]
    lines += ["   " + line for line in usage.splitlines()] + [""]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names = ", ".join(action.option_strings) or action.metavar or action.dest
        takes_value = action.option_strings and action.nargs != 0
        metavar = f" {action.metavar or action.dest.upper()}" if takes_value else ""
        help_text = _sentence((action.help or "") % {"default": action.default, "prog": parser.prog})
        if action.choices is not None:
            help_text += " One of " + ", ".join(f"``{c}``" for c in action.choices) + "."
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in (action.help or ""):
            help_text += f" Default: ``{action.default}``."
        lines += [f".. option:: {names}{metavar}", "", "   " + help_text.strip().replace("*", r"\*"), ""]
    if nested and parser._subparsers is not None:
        for name in _commands(parser).choices:
            child, child_description = _child(parser, name)
            title = child.prog
            lines += [title, "-" * len(title), "", *command_rst(child, child_description), ""]
    return lines


class CommandHelp(ModuleAPI):
    """``.. warpfields-command:: train``: the command's arguments as its parser declares them."""

    def run(self):
        parser, description = _subparser(self.arguments[0])
        nested = self.arguments[0] != "warpfields"
        return self._parse("\n".join(command_rst(parser, description, nested)))


def write_command_pages(app):
    """One page per command under ``cli/`` (generated, not committed), so a new command gets its page."""
    folder = app.srcdir / "cli"
    folder.mkdir(exist_ok=True)
    names = sorted(_commands(_subparser("warpfields")[0]).choices)
    pages = {name: f"warpfields {name}\n{'=' * (11 + len(name))}\n\n.. warpfields-command:: {name}\n" for name in names}
    toctree = "\n".join(f"   {name}" for name in names)
    pages["index"] = f"Command line\n============\n\n.. warpfields-command:: warpfields\n\n.. toctree::\n\n{toctree}\n"
    for name, text in pages.items():
        page = folder / f"{name}.rst"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)


def setup(app):
    directives.register_directive("warpfields-module", ModuleAPI)
    directives.register_directive("warpfields-command", CommandHelp)
    app.connect("builder-inited", write_command_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

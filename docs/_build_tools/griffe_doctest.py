"""Griffe extension for the API reference: fences doctest examples.

The library's docstrings write examples as bare ``>>>`` lines after an
``Example:`` line (not an indented Google ``Examples:`` section). Markdown
would read ``>>>`` as nested block quotes, so this extension wraps every run
of doctest lines (a ``>>>`` line and everything up to the next blank line)
in a ``pycon`` code fence at the run's indentation, and drops ``# doctest:`` flags.
It changes what the API pages show, never the code.

Loaded by mkdocstrings (``mkdocs.yml``: ``extensions``).
"""

import re

import griffe

_FLAGS = re.compile(r"\s*#\s*doctest:.*$")


def fence_doctests(text):
    """``text`` with every doctest run inside a ```` ```pycon ```` fence."""
    lines = text.split("\n")
    out = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.lstrip().startswith(">>>"):
            indent = line[:len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(_FLAGS.sub("", lines[i]))
                i += 1
            if out and out[-1].strip():
                out.append("")
            out.extend([indent + "```pycon", *block, indent + "```"])
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs):  # pylint: disable=unused-argument
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)

"""Every docstring example of the library runs (doctest).

Examples that need files or an evaluation's results say so and carry
``# doctest: +SKIP``; all others must run and print what they show.
"""

import doctest
import importlib
import pkgutil

import pytest

import rls_tf


def _modules():
    names = ["rls_tf"]
    for info in pkgutil.walk_packages(rls_tf.__path__, prefix="rls_tf."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        if test.filename and not test.filename.endswith(".py"):
            continue
        runner.run(test, clear_globs=True)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) of {name} failed"


def test_skipped_examples_say_why():
    unexplained = []
    for name in _modules():
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
            if (any(e.options.get(doctest.SKIP) for e in test.examples)
                    and "Not run as a doctest" not in test.docstring):
                unexplained.append(test.name)
    assert not unexplained, f"skipped examples without '(Not run as a doctest: ...)': {unexplained}"

"""A thread-local stack of active scopes: the one behind `sampling_scope` and `noise_scope`.

`rls_tf.layers.sampling` (how RLS layers sample their copies) and
`rls_tf.defenses.seeded` (how noise layers are seeded) both keep their
active scopes here: every thread sees its own stack, the innermost scope
is the last one pushed.

Example:

>>> stack = ScopeStack()
>>> with stack.push("outer"), stack.push("inner"):
...     stack.current()
'inner'
>>> stack.current() is None
True
"""

import contextlib
import threading

__all__ = ["ScopeStack"]


class ScopeStack(threading.local):
    """Per-thread stack of scopes (``scopes``, innermost last)."""

    def __init__(self):
        super().__init__()
        self.scopes = []

    def current(self, default=None):
        """The innermost active scope, or `default` when none is."""
        return self.scopes[-1] if self.scopes else default

    @contextlib.contextmanager
    def push(self, scope):
        """Makes `scope` the innermost one for the block; yields it."""
        self.scopes.append(scope)
        try:
            yield scope
        finally:
            self.scopes.pop()

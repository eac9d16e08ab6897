"""Cache keys: the digest of the arrays a model was trained on changes with their content, shape and type."""

from __future__ import annotations

import numpy as np

from voicegender_training.codehash import array_digest


def test_array_digest_follows_content_shape_and_dtype() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert array_digest(x) == array_digest(x.copy())
    changed = x.copy()
    changed[1, 2, 3] += 1e-3
    assert array_digest(changed) != array_digest(x)
    assert array_digest(x.reshape(4, 6)) != array_digest(x)
    assert array_digest(x.view(np.int32)) != array_digest(x)
    # A strided view is hashed by its values, as its contiguous copy.
    assert array_digest(x[:, ::2]) == array_digest(np.ascontiguousarray(x[:, ::2]))
    # Several arrays: the split between them counts.
    a, b = np.arange(4.0), np.arange(4.0, 8.0)
    assert array_digest(a, b) != array_digest(np.concatenate((a, b)))
    assert array_digest(np.zeros((0, 98, 40), np.float32)) != array_digest(np.zeros((0, 40), np.float32))

"""One loaded SavedModel under concurrent load, the way a model server calls it.

Several threads call the ``serving_default`` signature of one loaded export
at once: no call fails, concurrent requests get independent sampled paths
(no two requests see the same set of N sampled models, which with M=2 and N=10
happens by chance with probability below 1e-9 per pair), and the process
memory does not grow across thousands of calls.
"""

import concurrent.futures
import resource

import keras
import numpy as np
import tensorflow as tf

import rls_tf.models
from rls_tf.export import export_saved_model

_THREADS = 8
_CONCURRENT_CALLS = 400
_WARMUP_CALLS = 300
_MEMORY_CALLS = 2000
# Growth of the peak resident set allowed over _MEMORY_CALLS calls after the
# warm-up: allocator noise; a leak of 20 KB or more per call would exceed it.
_MEMORY_SLACK_MB = 40.0


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def test_concurrent_requests_are_independent_and_memory_is_flat(tmp_path):
    keras.utils.set_random_seed(0)
    model = rls_tf.models.build_model("small_cnn", input_shape=(28, 28, 1), eval_samples=10)
    path = export_saved_model(model, str(tmp_path / "serving"), eval_samples=10)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    image = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, 28, 28, 1)), tf.float32)

    def call(_):
        return signature(images=image)["sample_probabilities"].numpy()[0]  # [N, K]

    for _ in range(_WARMUP_CALLS):
        call(None)
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        samples = list(pool.map(call, range(_CONCURRENT_CALLS)))
    assert len(samples) == _CONCURRENT_CALLS
    # Each request's N sampled models, as the set of their outputs (the draws
    # differ exactly when the outputs do: the copies of an untrained model differ).
    sets = {tuple(sorted(map(tuple, np.round(s, 6)))) for s in samples}
    assert len(sets) == _CONCURRENT_CALLS  # no two requests drew the same N paths
    within = [len({tuple(np.round(row, 6)) for row in s}) for s in samples]
    assert np.mean(within) > 1  # and one request's N models are not one repeated path

    before = _peak_rss_mb()
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(call, range(_MEMORY_CALLS)))
    assert _peak_rss_mb() - before < _MEMORY_SLACK_MB

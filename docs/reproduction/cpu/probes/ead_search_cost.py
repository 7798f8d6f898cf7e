"""Probe: EAD with a binary search from the paper's c = 0.01 (cifar10_plain, test images 20-39, 1,000 steps).

Run from the repository root with the cpu suite's cifar10_plain weights present.
Session s28 (niced beside two evaluation runs): 3 search steps fooled 3 of 15 in
169 s, 5 steps 15 of 15 in 406 s.
"""
import numpy as np, tensorflow as tf, time
from rls_tf.evaluation.api import load_classifier
from rls_tf.attacks.elastic_net import ead
from rls_tf.data.datasets import load_numpy, to_model_range
m = load_classifier("docs/reproduction/cpu/runs/cifar10_plain")[0]
x, y = load_numpy("cifar10", "test", data_dir="../shared/data", max_examples=50)
x = np.asarray(to_model_range(x), np.float32)[20:40]; y = np.asarray(y, np.int64)[20:40]
fn = lambda v: tf.math.log(m.defend(v) + 1e-12)
clean = np.argmax(fn(x).numpy(), -1) == y
for kw in (dict(c=0.01, binary_search_steps=3), dict(c=0.01, binary_search_steps=5)):
    t = time.time(); xa = ead(fn, x, y, steps=1000, **kw).numpy()
    adv = np.argmax(fn(xa).numpy(), -1) != y
    l1 = np.abs(xa - x).reshape(20, -1).sum(1)
    print(kw, "fooled", int((adv & clean).sum()), "/", int(clean.sum()), "median L1", float(np.median(l1[adv & clean])) if (adv & clean).any() else None, f"{time.time()-t:.0f}s", flush=True)

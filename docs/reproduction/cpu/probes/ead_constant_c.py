"""Probe: does EAD move at the paper's constant c? (cifar10_plain, 20 test images, 200 steps)

Run from the repository root with the cpu suite's cifar10_plain weights present.
Session s28 (niced beside two evaluation runs), fooled of the 16 the model gets right:
c = 0.1: 0 (0 images moved); c = 0.1, beta = 1e-4: 9; c = 0.01 with 5 binary-search
steps: 16; c = 10: 16. EAD's shrinkage-thresholding puts back every pixel whose step
is below beta; at small c the step never reaches it.
"""
import numpy as np, tensorflow as tf, time
from rls_tf.evaluation.api import load_classifier
from rls_tf.attacks.elastic_net import ead
from rls_tf.data.datasets import load_numpy, to_model_range
m = load_classifier("docs/reproduction/cpu/runs/cifar10_plain")[0]
x, y = load_numpy("cifar10", "test", data_dir="../shared/data", max_examples=20)
x = np.asarray(to_model_range(x), np.float32); y = np.asarray(y, np.int64)
fn = lambda v: m.defend_logits(v) if hasattr(m, "defend_logits") else tf.math.log(m.defend(v) + 1e-12)
clean = np.argmax(fn(x).numpy(), -1) == y
for kw in (dict(c=0.1), dict(c=0.1, beta=1e-4), dict(c=0.01, binary_search_steps=5), dict(c=10.0)):
    t = time.time(); xa = ead(fn, x, y, steps=200, **kw).numpy()
    adv = np.argmax(fn(xa).numpy(), -1) != y
    print(kw, "success on clean-correct:", int((adv & clean).sum()), "/", int(clean.sum()), "moved:", int((np.abs(xa - x).reshape(20, -1).max(1) > 0).sum()), f"{time.time()-t:.0f}s", flush=True)

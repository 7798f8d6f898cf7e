"""Probe: input-gradient throughput of one process vs two, by TF thread count.

Run from the repository root with the cpu suite's cifar10_rls_mse weights present
(docs/reproduction/cpu/runs/); the argument is a label. Batches of 50 images x
10 pinned RLS draws, 40 s each. Session s28 (AMD EPYC, 2 cores, runs stopped):
    python docs/reproduction/cpu/probes/threads.py default                -> 2.90 batches/s
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 ... threads.py one  -> 1.79
    two of the one-thread runs at once                                    -> 1.84 + 1.81 = 3.65
    two default runs at once                                              -> 1.75 + 1.75 = 3.49
"""
import os, time, sys, numpy as np, tensorflow as tf
from rls_tf.evaluation.api import load_classifier
m = load_classifier("docs/reproduction/cpu/runs/cifar10_rls_mse")[0]
x = tf.constant(np.random.uniform(-1,1,(50,32,32,3)).astype(np.float32))
p = tf.constant(np.asarray(m.draw(10, seed=1)))
@tf.function
def g(x):
    with tf.GradientTape() as t:
        t.watch(x); o = m.outputs(x, p); l = tf.reduce_sum(tf.math.log(o[..., 0] + 1e-9))
    return t.gradient(l, x)
g(x); g(x)
t0=time.time(); n=0
while time.time()-t0 < 40: g(x).numpy(); n+=1
print(sys.argv[1], "iters/s", n/(time.time()-t0), flush=True)

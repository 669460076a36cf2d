"""Writes tests/data/tf_ops.tflite with TensorFlow's own TFLite converter: ops and options that
frlite's files do not hold but phones' files do (asymmetric SAME padding of a stride-2 conv and
pools, a depthwise multiplier, transpose conv to an odd size, RELU6, LOGISTIC, TANH, LEAKY_RELU,
SOFTMAX), so the fp16 executor's kernels are checked on them against LiteRT
(tests/test_fp16_executor.py). Re-run after changing it:

    .venv/bin/python tests/data/make_tf_ops.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
w1 = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
wd = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
wt = rng.standard_normal((3, 3, 5, 8)).astype(np.float32)


@tf.function(input_signature=[tf.TensorSpec([1, 8, 10, 3], tf.float32)])
def model(x):  # type: ignore[no-untyped-def]
    a = tf.nn.conv2d(x, w1, 2, "SAME")                      # 8x10 -> 4x5: padding 0 before, 1 after
    b = tf.nn.depthwise_conv2d(a, wd, [1, 1, 1, 1], "SAME")  # depth multiplier 2
    c = tf.nn.avg_pool2d(b, 3, 2, "SAME")                    # averages over in-image elements only
    d = tf.nn.max_pool2d(b, 2, 2, "SAME")
    e = tf.nn.relu6(c) + tf.nn.sigmoid(d) * tf.tanh(c)
    g = tf.nn.conv2d_transpose(e, wt, [1, 3, 5, 5], 2, "SAME")
    h = tf.nn.leaky_relu(g, 0.1)
    return h, tf.nn.softmax(tf.reduce_mean(h, axis=[1, 2]))


if __name__ == "__main__":
    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    out = Path(__file__).with_name("tf_ops.tflite")
    out.write_bytes(conv.convert())
    print(f"wrote {out}")

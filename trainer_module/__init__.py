"""The model side of the pipeline: Transform's preprocessing_fn, the MMOE model and the Trainer's run_fn.

Keras: the whole project uses Keras 2 (`tf_keras`), which TFT and TFMA 1.16 use inside. This package is
imported wherever our code runs (the runners, the Transform and Trainer executors, Beam workers), so it
is the one place that makes `tf.keras` mean `tf_keras` too, before TensorFlow resolves it.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

"""Autograph leaves Keras 2 (`tf_keras`) and TFT's own code alone, as it leaves TensorFlow and Keras 3.

TensorFlow's autograph rewrites every Python function a `tf.function` calls into graph code, unless
the function's module is on its do-not-convert list. That list names `tensorflow` and `keras`, but
not `tf_keras` (Keras 2 under its new name) nor `tensorflow_transform`, so every trace of a Keras
training step re-parsed and rewrote hundreds of Keras functions (metrics, losses, optimizers, the
functional graph): measured on the bundled model, 47 of the Trainer's 65 s on 2k rows went there.
Both libraries are written as graph code and were never converted before Keras 2 was renamed.
Importing this module (the model and preprocessing modules do) adds them to the list.
"""

from tensorflow.python.autograph.core import config

LIBRARIES = ('tf_keras', 'tensorflow_transform')

config.CONVERSION_RULES = (tuple(config.DoNotConvert(name) for name in LIBRARIES)
                           + config.CONVERSION_RULES)

"""Autograph leaves Keras 2 (`tf_keras`) and TFT alone, as it leaves TensorFlow and Keras 3.

TensorFlow's autograph rewrites every Python function a `tf.function` calls into graph code, unless
the function's module is on its do-not-convert list. That list names `tensorflow` and `keras`, but
not `tf_keras` (Keras 2 under its new name) nor `tensorflow_transform`, so every trace of a Keras
training step re-parsed and rewrote hundreds of Keras functions (metrics, losses, optimizers, the
functional graph): most of the Trainer's time on the bundled model went there (docs/model.md,
"Keras 2 and autograph").
Both libraries are written as graph code and were never converted before Keras 2 was renamed.
Importing this module (trainer_module's model and preprocessing modules do) adds them to the list,
for the whole process: it is a permanent patch, not a context.

It prepends to autograph's private rule list, `tensorflow.python.autograph.core.config`, which has
no public API (`tf.autograph.experimental.do_not_convert` marks one function, not a library).
What would let it go: TensorFlow listing `tf_keras` (and TFT) among its own do-not-convert rules,
as it lists `keras`, or a public way to add a library.
"""

from tensorflow.python.autograph.core import config

LIBRARIES = ('tf_keras', 'tensorflow_transform')

config.CONVERSION_RULES = (tuple(config.DoNotConvert(name) for name in LIBRARIES)
                           + config.CONVERSION_RULES)

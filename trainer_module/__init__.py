"""The model side of the pipeline: Transform's preprocessing_fn, the MMOE model and the Trainer's run_fn.

It imports nothing from `pipeline/` or `components/`: what the pipeline tells the Trainer is
`settings.TrainerSettings`, defined here.

Keras: the whole project uses Keras 2 (`tf_keras`), which TFT and TFMA 1.16 use inside. TensorFlow
resolves `tf.keras` from TF_USE_LEGACY_KERAS when `tf.keras` is first used, not when TensorFlow is
imported (TFT's own `keras_lib` relies on the same), so this setting only has to come before that
first use. Every package of the project imports this one, so any of our imports makes the choice,
before or after `import tensorflow`; processes that start in TFX's code (a Kubeflow container) get
it from the image's environment instead (Dockerfile).
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

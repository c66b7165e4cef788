"""The pipeline side: the config, `create_pipeline()`, what the runners share, data sets and
experiments."""

import trainer_module  # noqa: F401  (the Keras choice: see trainer_module/__init__.py)

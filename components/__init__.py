"""The pipeline's own TFX components, and its own artifact type.

The artifact type is defined here because KFP v2 finds a custom type's class by its type name,
which must read `<module>.<Class>` with a single dot.
"""

from tfx.types import artifact

import trainer_module  # noqa: F401  (the Keras choice: see trainer_module/__init__.py)


class EvaluationDashboard(artifact.Artifact):
    """A directory of static HTML pages: index.html and <task>.html."""
    TYPE_NAME = 'components.EvaluationDashboard'

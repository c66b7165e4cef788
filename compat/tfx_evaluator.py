"""TFX's Evaluator, reading its examples through TFXIOs of the caller's choosing.

TFX 1.16's Evaluator executor asks `tfxio_utils.get_tfxio_factory_from_artifact` for the factory
of the TFXIO that TFMA reads the examples with, looking the function up in that module when its
`Do` runs, and offers no other way to choose the TFXIO. components/evaluator.py reads batches of
records instead of one record per Beam element (components/batched_records.py).

What would let it go: TFX's Evaluator taking a TFXIO factory (or TFMA's batch reading) as an
argument or an executor hook.
"""

import contextlib
from typing import Callable, Iterator

from tfx.components.util import tfxio_utils
from tfx_bsl.tfxio import tfxio

from compat import patched


@contextlib.contextmanager
def tfxio_wrapped(wrap: Callable[[tfxio.TFXIO], tfxio.TFXIO]) -> Iterator[None]:
    """While it lasts, every TFXIO that TFX makes from an Examples artifact is `wrap(tfxio)`.
    An executor holds it around its `Do`: components run one at a time in a process
    (LocalDagRunner, a container per component), and the Beam pipeline keeps the TFXIOs it was
    built with."""
    factory_of = tfxio_utils.get_tfxio_factory_from_artifact

    def wrapped_factory_of(*args, **kwargs):
        factory = factory_of(*args, **kwargs)
        return lambda file_pattern: wrap(factory(file_pattern))

    with patched(tfxio_utils, 'get_tfxio_factory_from_artifact', wrapped_factory_of):
        yield

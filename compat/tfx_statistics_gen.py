"""TFX's StatisticsGen, reading each split through a TFXIO of the caller's choosing.

TFX 1.16's StatisticsGen executor makes the TFXIO of each split with
`tfxio_utils.get_split_tfxio`, looking the function up in that module when its `Do` runs, and
then feeds `tfxio.BeamSource()` to TFDV's `GenerateStatistics`; it offers no other way to choose
the TFXIO. components/statistics_gen.py reads batches of records instead of one record per Beam
element (components/batched_records.py).

What would let it go: TFX's StatisticsGen taking a TFXIO factory (or batch reading) as an
argument or an executor hook.
"""

import contextlib
from typing import Callable, Iterator

from tfx.components.util import tfxio_utils
from tfx_bsl.tfxio import tfxio

from compat import patched


@contextlib.contextmanager
def split_tfxio_wrapped(wrap: Callable[[tfxio.TFXIO], tfxio.TFXIO]) -> Iterator[None]:
    """While it lasts, every TFXIO that TFX makes for one split of an Examples artifact
    (`get_split_tfxio`) is `wrap(tfxio)`. An executor holds it around its `Do`: components run
    one at a time in a process (LocalDagRunner, a container per component), and the Beam pipeline
    keeps the TFXIOs it was built with."""
    get_split_tfxio = tfxio_utils.get_split_tfxio

    def wrapped_get_split_tfxio(*args, **kwargs):
        return wrap(get_split_tfxio(*args, **kwargs))

    with patched(tfxio_utils, 'get_split_tfxio', wrapped_get_split_tfxio):
        yield

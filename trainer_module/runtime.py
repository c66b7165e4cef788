"""How TensorFlow runs in the Trainer's process: its op threads, the distribution strategy, whether
this process is the one whose model is kept (`is_chief`), the seed and op determinism, and the
directories it writes (`output_dirs`).
"""

import contextlib
import dataclasses
import logging
import os
import tempfile
from typing import Iterator

import tensorflow as tf
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer_module.settings import TrainerSettings


def set_op_threads(threads: int) -> bool:
    """Gives TensorFlow's ops `threads` threads each (`training.intra_op_parallelism_threads`; 0:
    one per core). TensorFlow takes the setting once per process, when its first op runs: where it
    already ran with another (an orchestrator that ran other components in this process), that one
    stays and a warning says how to apply the config's. Returns whether `threads` is in effect."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        return True
    except RuntimeError:
        current = (tf.config.threading.get_intra_op_parallelism_threads()
                   or int(os.environ.get('TF_NUM_INTRAOP_THREADS', 0)))
        if current == threads:
            return True
        logging.getLogger(__name__).warning(
            'TensorFlow already runs in this process with %s intra-op threads, which it keeps: '
            'training.intra_op_parallelism_threads=%d applies where the Trainer starts TensorFlow, '
            'or start the process with TF_NUM_INTRAOP_THREADS=%d', current or 'one per core',
            threads, threads)
        return False


def distribution_strategy(distribution: str) -> tf.distribute.Strategy:
    """The strategy `training.distribution` names; 'multi_worker_mirrored' takes the cluster and
    this worker's role from TF_CONFIG. Create it before any other TensorFlow work."""
    if distribution == 'mirrored':
        return tf.distribute.MirroredStrategy()
    if distribution == 'multi_worker_mirrored':
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model: the only one, or the chief (or first worker) of a
    cluster."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == 'chief' or (
        resolver.task_type == 'worker' and resolver.task_id == 0
        and 'chief' not in resolver.cluster_spec().as_dict())


def seed_and_determinism(settings: TrainerSettings):
    """Seeds Python, numpy and TensorFlow with the model's seed (`model.seed`) and, under
    `training.deterministic`, makes TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(settings.model.seed)
    if settings.training.deterministic:
        # For the rest of the process: TensorFlow has no switch back.
        tf.config.experimental.enable_op_determinism()


@dataclasses.dataclass(frozen=True)
class OutputDirs:
    """Where this process writes the TensorBoard logs and the SavedModel."""
    logs: str
    serving_model: str


@contextlib.contextmanager
def output_dirs(fn_args: FnArgs, chief: bool) -> Iterator[OutputDirs]:
    """The chief writes into the Trainer's own directories (`fn_args.model_run_dir`,
    `fn_args.serving_model_dir`). Every other worker of a cluster writes too (saving is
    collective), into a scratch directory that is removed afterwards."""
    if chief:
        yield OutputDirs(logs=fn_args.model_run_dir, serving_model=fn_args.serving_model_dir)
        return
    scratch = tempfile.mkdtemp(prefix='mmoe-worker-')
    try:
        yield OutputDirs(logs=scratch, serving_model=scratch)
    finally:
        tf.io.gfile.rmtree(scratch)

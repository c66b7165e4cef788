"""One worker of the distributed-training test. With TF_CONFIG naming the cluster and this worker,
it trains the Trainer's MMOE for a few steps under the Trainer's MultiWorkerMirroredStrategy on
transformed examples (as Transform writes them: gzipped tf.Examples of ids and z-scores), and writes
its final weights and whether it is the chief.

    TF_CONFIG=... python tests/multi_worker_train.py TRAIN_FILE OUT.npz
"""

import sys

import numpy as np
import tensorflow as tf

from trainer_module.build import build_model
from trainer_module.data import make_dataset
from trainer_module.feature_column import DenseFeat, SparseFeat
from trainer_module.runtime import distribution_strategy, is_chief
from trainer_module.settings import (
    DenseFeature,
    ModelConfig,
    SparseFeature,
    TaskHead,
    TrainerSettings,
    TrainingConfig,
)

STEPS = 6
VOCABULARY = 20
SETTINGS = TrainerSettings(
    sparse_features=(SparseFeature('user', 4),), dense_features=(DenseFeature('price'),),
    tasks=(TaskHead('ctr', 'click'), TaskHead('ctcvr', 'purchase')),
    model=ModelConfig(expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,)),
    training=TrainingConfig(batch_size=32, distribution='multi_worker_mirrored'))
SPEC = {'user': tf.io.FixedLenFeature([], tf.int64), 'price': tf.io.FixedLenFeature([], tf.float32),
        'click': tf.io.FixedLenFeature([], tf.float32),
        'purchase': tf.io.FixedLenFeature([], tf.float32)}


def columns():
    return [SparseFeat('user', VOCABULARY, embedding_dim=4), DenseFeat('price')]


def write_examples(path, rows=256, seed=0, reverse=False):
    """`rows` transformed examples into a gzipped TFRecord file (in reverse order: the same
    records)."""
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(rows):
        click = float(rng.integers(0, 2))
        feature = {
            'user': tf.train.Feature(int64_list=tf.train.Int64List(
                value=[int(rng.integers(0, VOCABULARY))])),
            'price': tf.train.Feature(float_list=tf.train.FloatList(value=[float(rng.normal())])),
            'click': tf.train.Feature(float_list=tf.train.FloatList(value=[click])),
            'purchase': tf.train.Feature(float_list=tf.train.FloatList(
                value=[click * float(rng.integers(0, 2))]))}
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature))
                        .SerializeToString())
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for example in reversed(examples) if reverse else examples:
            writer.write(example)


def main(train_file, out):
    strategy = distribution_strategy(SETTINGS.training.distribution)
    train = make_dataset([train_file], SPEC, SETTINGS, columns(), training=True)
    with strategy.scope():
        model = build_model(SETTINGS, columns())
    initial = model.get_weights()
    model.fit(train, steps_per_epoch=STEPS, epochs=1, verbose=0)
    final = model.get_weights()
    np.savez(out, chief=is_chief(strategy), replicas=strategy.num_replicas_in_sync,
             changed=any(not np.array_equal(a, b) for a, b in zip(initial, final)),
             **{f'weight_{i}': w for i, w in enumerate(final)})


if __name__ == '__main__':
    main(*sys.argv[1:])

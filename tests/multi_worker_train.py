"""One worker of the distributed-training test. With TF_CONFIG naming the cluster and this worker,
it trains the pipeline's MMOE for a few steps under the Trainer's MultiWorkerMirroredStrategy on
transformed examples, and writes its final weights and whether it is the chief.

    TF_CONFIG=... python tests/multi_worker_train.py TRANSFORM_GRAPH_DIR 'TRAIN_FILES_GLOB' OUT.npz
"""

import sys

import numpy as np
import tensorflow_transform as tft

from pipeline.config import PipelineConfig
from trainer_module.feature_column import feature_columns_from_transform
from trainer_module.run import build_model, distribution_strategy, is_chief, make_dataset

STEPS = 6


def main(transform_dir, train_files, out):
    config = PipelineConfig().with_overrides([
        'training.distribution=multi_worker_mirrored', 'training.batch_size=32',
        'model.expert_dnn_hidden_units=[16]', 'model.tower_dnn_hidden_units=[8]'
    ]).trainer_settings()
    strategy = distribution_strategy(config.training.distribution)
    transform_output = tft.TFTransformOutput(transform_dir)
    columns = feature_columns_from_transform(config, transform_output)
    train = make_dataset([train_files], transform_output.transformed_feature_spec(), config,
                         columns, training=True)
    with strategy.scope():
        model = build_model(config, columns)
    initial = model.get_weights()
    model.fit(train, steps_per_epoch=STEPS, epochs=1, verbose=0)
    final = model.get_weights()
    np.savez(out, chief=is_chief(strategy), replicas=strategy.num_replicas_in_sync,
             changed=any(not np.array_equal(a, b) for a, b in zip(initial, final)),
             **{f'weight_{i}': w for i, w in enumerate(final)})


if __name__ == '__main__':
    main(*sys.argv[1:])

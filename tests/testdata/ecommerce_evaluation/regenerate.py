"""Writes evaluation/ beside this script: what the project's Evaluator (components/evaluator.py,
configured as pipeline.create_pipeline() configures it, the default config) writes for the ctr
task on ROWS rows of the bundled data, data/ecommerce/ecommerce.csv, judging a candidate against a
baseline: two untrained models of the default architecture (small, seeds apart) on the checked-in
Transform output (tests/testdata/ecommerce_transform/). Of the plots it keeps the Overall slice's,
the only ones a dashboard draws (each slice's take about 200 KB). A small real TFMA output for the
tests of the dashboard (tests/test_dashboard.py); rerun when what the Evaluators write changes.

    .venv/bin/python tests/testdata/ecommerce_evaluation/regenerate.py
"""

import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import path_utils, proto_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path.insert(0, os.path.dirname(HERE))

from bundled_examples import bundled_examples  # noqa: E402

from components import evaluator, grouped_evaluation  # noqa: E402
from local_runner import LOCAL_BEAM_ARGS  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.evaluation import eval_config  # noqa: E402
from trainer_module.build import build_model  # noqa: E402
from trainer_module.export import export_serving_model  # noqa: E402
from trainer_module.features import feature_columns_from_transform  # noqa: E402

ROWS = 300
TASK = 'ctr'
# Small models: the output's layout, not the models, is what the tests read.
SMALL_MODEL = ['model.expert_dnn_hidden_units=[8]', 'model.tower_dnn_hidden_units=[4]']
SEEDS = {'candidate': 1024, 'baseline': 7}
TRANSFORM_OUTPUT = os.path.join(os.path.dirname(HERE), 'ecommerce_transform', 'transform_graph')
OUTPUT = os.path.join(HERE, 'evaluation')


def _model(scratch: str, role: str) -> standard_artifacts.Model:
    """A Model artifact holding the Trainer's export of an untrained model seeded for `role`."""
    config = PipelineConfig().with_overrides(SMALL_MODEL + [f'model.seed={SEEDS[role]}'])
    settings = config.trainer_settings()
    output = tft.TFTransformOutput(TRANSFORM_OUTPUT)
    columns = feature_columns_from_transform(settings, output)
    model = standard_artifacts.Model()
    model.uri = os.path.join(scratch, role)
    export_serving_model(build_model(settings, columns), output, settings, columns,
                         path_utils.serving_model_path(model.uri))
    return model


def _keep_overall_plots(evaluation_dir: str):
    """Rewrites the plots files in `evaluation_dir` with the Overall slice's plots only."""
    for name in os.listdir(evaluation_dir):
        if not name.startswith('plots-'):
            continue
        path = os.path.join(evaluation_dir, name)
        records = [record.numpy() for record in tf.data.TFRecordDataset(path)]
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                if not metrics_for_slice_pb2.PlotsForSlice.FromString(record).slice_key.ListFields():
                    writer.write(record)


def main():
    config = PipelineConfig()
    task = next(task for task in config.tasks if task.name == TASK)
    with tempfile.TemporaryDirectory() as scratch:
        examples, schema_artifact = bundled_examples(scratch, 'eval', ROWS)
        evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
        evaluation.uri, blessing.uri = (os.path.join(scratch, 'evaluation'),
                                        os.path.join(scratch, 'blessing'))
        evaluator.Executor(evaluator.Executor.Context(
            beam_pipeline_args=list(LOCAL_BEAM_ARGS), tmp_dir=os.path.join(scratch, 'tmp'),
            unique_id='1')).Do(
            {keys.EXAMPLES_KEY: [examples], keys.MODEL_KEY: [_model(scratch, 'candidate')],
             keys.BASELINE_MODEL_KEY: [_model(scratch, 'baseline')],
             keys.SCHEMA_KEY: [schema_artifact]},
            {keys.EVALUATION_KEY: [evaluation], keys.BLESSING_KEY: [blessing]},
            {keys.EVAL_CONFIG_KEY: proto_utils.proto_to_json(eval_config(config, task)),
             keys.EXAMPLE_SPLITS_KEY: json.dumps(['eval']),
             keys.MODULE_PATH_KEY: grouped_evaluation.__name__})
        shutil.rmtree(OUTPUT, ignore_errors=True)
        shutil.copytree(evaluation.uri, OUTPUT)
    _keep_overall_plots(OUTPUT)
    print(f'wrote {OUTPUT}')


if __name__ == '__main__':
    main()

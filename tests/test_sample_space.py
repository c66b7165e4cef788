"""A task's own sample space (`tasks[].given`): a CVR task trained and judged on the clicked rows only.
The config's refusals; the Trainer's batches mask its loss and metrics elsewhere; its Evaluator
keeps those rows alone. The pipeline end to end: test_clicklog_pipeline.py."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.utils import config_util

from pipeline.config import ConfigError, PipelineConfig
from pipeline.evaluation import eval_config

from helpers import check_grouped_metrics

TASKS = 'tasks=[{name: ctr, label: click}, {name: cvr, label: purchase, given: ctr}]'


def _config(*assignments):
    return PipelineConfig().with_overrides([TASKS, *assignments])


@pytest.mark.parametrize('tasks, named', [
    ('[{name: ctr, label: click}, {name: cvr, label: purchase, given: ctcvr}]',
     "tasks.cvr.given: 'ctcvr' is not a task (tasks: ['ctr', 'cvr'])"),
    ('[{name: ctr, label: click}, {name: cvr, label: purchase, given: cvr}]',
     'tasks.cvr.given: a task cannot be trained only where its own label is 1'),
    ('[{name: m, label: watch, type: regression, gate: {max: 9}}, {name: cvr, label: purchase, '
     'given: m}]', "tasks.cvr.given: 'm' is a regression task; a sample space is the rows where a "
                "binary label is 1"),
    ('[{name: ctr, label: click, given: cvr}, {name: cvr, label: purchase, given: ctr}]',
     "tasks.ctr.given: 'cvr' has a sample space of its own ('ctr')"),
])
def test_a_sample_space_names_another_binary_task(tasks, named):
    with pytest.raises(ConfigError) as error:
        PipelineConfig().with_overrides([f'tasks={tasks}'])
    assert named in str(error.value)


def test_the_trainer_reads_the_sample_space_and_transform_does_not():
    config = _config()
    assert config.sample_space(config.tasks[1]) == 'click'
    heads = config.trainer_settings().tasks
    assert [head.sample_space for head in heads] == [None, 'click']
    assert config.transform_dict() == PipelineConfig().with_overrides([
        'tasks=[{name: ctr, label: click}, {name: cvr, label: purchase}]']).transform_dict()


def test_the_loss_and_metrics_of_a_task_count_its_sample_space_alone():
    """The same batch with the CVR labels outside the clicked rows flipped: the same loss and
    AUC; without the sample space they differ."""
    from trainer_module.build import build_model  # pylint: disable=import-outside-toplevel
    from trainer_module.data import _inputs_and_labels  # pylint: disable=import-outside-toplevel
    from trainer_module.feature_column import DenseFeat  # pylint: disable=import-outside-toplevel
    config = _config('sparse_features=[]', 'dense_features=[price]', 'slice_features=[]',
                     'drift=[]', 'evaluation.group_by=null',
                     'model.expert_dnn_hidden_units=[4]', 'model.tower_dnn_hidden_units=[2]')
    rng = np.random.default_rng(0)
    click = (rng.random(64) < 0.5).astype(np.int64)
    purchase = click * (rng.random(64) < 0.5)
    price = tf.constant(rng.random((64, 1)), tf.float32)
    columns = [DenseFeat('price', 1)]

    def evaluate(settings, purchases):
        features = {'price': price, 'click': click, 'purchase': purchases}
        tf.keras.utils.set_random_seed(0)
        model = build_model(settings, columns)
        return model.evaluate(tf.data.Dataset.from_tensors(
            _inputs_and_labels(features, settings, columns)), verbose=0, return_dict=True)

    flipped = np.where(click == 1, purchase, 1 - purchase)
    masked = config.trainer_settings()
    before, after = evaluate(masked, purchase), evaluate(masked, flipped)
    assert before['cvr_loss'] == pytest.approx(after['cvr_loss'])
    assert before['cvr_auc'] == pytest.approx(after['cvr_auc'])
    every_row = PipelineConfig().with_overrides([
        'tasks=[{name: ctr, label: click}, {name: cvr, label: purchase}]', 'sparse_features=[]',
        'dense_features=[price]', 'slice_features=[]', 'drift=[]', 'evaluation.group_by=null',
        'model.expert_dnn_hidden_units=[4]', 'model.tower_dnn_hidden_units=[2]'
    ]).trainer_settings()
    assert evaluate(every_row, purchase)['cvr_loss'] != pytest.approx(
        evaluate(every_row, flipped)['cvr_loss'])


def _varlen(values, dtype=None):
    return types.VarLenTensorValue(values=np.array(values, dtype=dtype),
                                   indices=np.array([[i, 0] for i in range(len(values))]),
                                   dense_shape=np.array([len(values), 1]))


@pytest.mark.beam
def test_its_evaluator_judges_the_clicked_rows_alone():
    config = _config('slice_features=[device]', 'evaluation.group_by=null')
    tfma_config = config_util.update_eval_config_with_defaults(
        eval_config(config, config.tasks[1]), has_baseline=False)
    rng = np.random.default_rng(1)
    rows = 300
    click = (rng.random(rows) < 0.3).astype(np.int64)
    purchase = click * (rng.random(rows) < 0.4)
    predictions = np.clip(purchase * 0.3 + rng.random(rows) * 0.7, 0, 1)
    device = np.array([b'ios', b'pc'], dtype=object)[rng.integers(0, 2, rows)]
    batches = [{tfma.INPUT_KEY: np.zeros(100, dtype=object),
                tfma.FEATURES_KEY: {'click': _varlen(click[part]),
                                    'device': _varlen(device[part], object)},
                tfma.LABELS_KEY: _varlen(purchase[part]),
                tfma.PREDICTIONS_KEY: {'cvr': predictions[part, None]},
                tfma.EXAMPLE_WEIGHTS_KEY: None}
               for part in (slice(0, 100), slice(100, 200), slice(200, 300))]

    def check(results):
        [results] = results
        counts = {key: {k.name: v for k, v in values.items()}['example_count']
                  for key, values in results}
        assert counts[()] == click.sum()
        assert counts[(('device', 'ios'),)] == click[device == b'ios'].sum()

    check_grouped_metrics(batches, tfma_config, check)

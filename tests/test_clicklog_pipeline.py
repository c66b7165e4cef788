"""A click log through the whole pipeline: behaviour histories as list features (one sharing the
item table and counting the target item in it, one pooled by attention against the target's
category), a hashed id and a bounded vocabulary, drafted from the CSV and run end to end; both
serving signatures and pipeline.predict score its rows alike."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.utils import io_utils

from pipeline import draft, predict
from pipeline.datasets import clicklog
from trainer_module.models import esmm_cvr_name
from trainer_module.serving import (
    example_to_instance,
    instances_to_inputs,
    list_separators,
    signature_input_dtypes,
)
from trainer_module.settings import RAW_SIGNATURE

from helpers import run_pipeline

ROWS = 4000
FEATURES = [
    'sparse_features=[{name: user_id, hash_buckets: 500}, '
    '{name: item_id, min_frequency: 2, num_oov_buckets: 5}, item_category, device]',
    'sequence_features=[{name: hist_item_ids, embedding_name: item_id, max_length: 10, '
    'match: item_id}, '
    '{name: hist_categories, embedding_name: item_category, max_length: 10, '
    'combiner: attention, query: item_category}]',
    # A drift bound on a list feature: TFDV compares its values' frequencies.
    'drift=[{feature: hist_categories, infinity_norm: 0.5}]',
    'slice_features=[device]',
    # 4000 rows teach a model little (the Bayes AUCs are about 0.77 and 0.85): the gates stand
    # aside, so that the model is pushed and both signatures of the pushed copy are read.
    'tasks=[{name: click, label: click, gate: {min: 0}}, '
    '{name: purchase, label: purchase, gate: {min: 0}}]',
    # ESMM: a purchase is a click and a conversion, P(purchase) = P(click) P(conversion | click).
    'model.architecture=esmm',
]


@pytest.fixture(scope='module')
def clicklog_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('clicklog')
    clicklog.write(str(root / 'data'), ROWS, seed=3)
    os.remove(root / 'data' / clicklog.BAYES_AUC_NAME)
    roles = draft.draft(str(root / 'data' / clicklog.CSV_NAME), str(root / 'project'))
    run = run_pipeline(root / 'outputs', '--config', str(root / 'project' / 'config.yaml'),
                       '--train-steps', '120', '--batch-size', '128',
                       *(arg for setting in FEATURES for arg in ('--set', setting))).check()
    return roles, run


@pytest.mark.e2e
def test_the_draft_reads_a_click_log(clicklog_run):
    roles, _ = clicklog_run
    role, hist, _ = roles['hist_item_ids']
    assert role == 'sequence' and hist.embedding_name == 'item_id' and hist.match == 'item_id'
    assert roles['hist_categories'][1].embedding_name == 'item_category'
    # Most items are seen once in 4000 rows: the draft bounds their vocabulary.
    assert roles['item_id'][0] == 'sparse' and roles['item_id'][1].min_frequency == 2


@pytest.mark.e2e
def test_every_component_runs_on_list_and_hashed_features(clicklog_run):
    _, run = clicklog_run
    states = run.states()
    assert all(state == 'COMPLETE' for state in states.values()), states
    assert {'Transform', 'Trainer', 'Evaluator.click', 'Evaluator.purchase', 'Pusher'} <= set(states)
    assert run.summary['tasks']['click']['metrics']['example_count'] > 0


@pytest.mark.e2e
def test_statistics_count_the_values_of_a_list_per_row(clicklog_run):
    _, run = clicklog_run
    root = os.path.join(run.output, 'pipeline_root', 'StatisticsGen', 'statistics')
    version = sorted(os.listdir(root), key=int)[-1]
    stats = io_utils.read_bytes_file(
        os.path.join(root, version, 'Split-train', 'FeatureStats.pb'))
    statistics = statistics_pb2.DatasetFeatureStatisticsList.FromString(stats)
    by_name = {feature.path.step[0]: feature for feature in statistics.datasets[0].features}
    common = by_name['hist_item_ids'].string_stats.common_stats
    assert common.max_num_values > 1 and common.avg_num_values > 1
    assert by_name['item_id'].string_stats.common_stats.max_num_values == 1


@pytest.mark.e2e
def test_both_signatures_and_predict_score_the_eval_rows_alike(clicklog_run, tmp_path):
    _, run = clicklog_run
    model_dir = run.summary['pushed_model']
    model = tf.saved_model.load(model_dir)
    raw = model.signatures[RAW_SIGNATURE]
    dtypes = signature_input_dtypes(raw)
    separators = list_separators(model_dir)
    assert separators == {'hist_item_ids': '|', 'hist_categories': '|'}
    examples_root = os.path.join(run.output, 'pipeline_root', 'CsvExampleGen', 'examples')
    version = sorted(os.listdir(examples_root), key=int)[-1]
    eval_dir = os.path.join(examples_root, version, 'Split-eval')
    records = [record.numpy() for record in tf.data.TFRecordDataset(
        sorted(tf.io.gfile.glob(os.path.join(eval_dir, '*'))), compression_type='GZIP').take(64)]
    instances = [example_to_instance(tf.train.Example.FromString(record), dtypes, separators)
                 for record in records]
    assert any('|' in instance['hist_item_ids'] for instance in instances)
    by_examples = model.signatures['serving_default'](examples=tf.constant(records))
    by_rows = raw(**instances_to_inputs(instances, dtypes))
    for task in ('click', 'purchase'):
        np.testing.assert_allclose(by_rows[task].numpy(), by_examples[task].numpy(),
                                   rtol=0, atol=1e-6, err_msg=task)
    # An ESMM serves its conversion rate after a click beside its two tasks: ctcvr = ctr x cvr.
    cvr = by_examples[esmm_cvr_name(('click', 'purchase'))].numpy()
    np.testing.assert_allclose(by_examples['purchase'].numpy(),
                               by_examples['click'].numpy() * cvr, rtol=1e-5)
    # The model reads the histories: the same row scores otherwise with another history.
    row = dict(instances[0])
    for name in separators:
        row[name] = ''
    other = dict(row, hist_categories='|'.join([row['item_category']] * 10),
                 hist_item_ids='|'.join([row['item_id']] * 10))
    scores = raw(**instances_to_inputs([row, other], dtypes))['click'].numpy()[:, 0]
    assert abs(scores[0] - scores[1]) > 1e-4, scores
    # pipeline.predict takes a history as its delimited string or as a JSON list.
    as_lists = [dict(instance, hist_item_ids=instance['hist_item_ids'].split('|')
                     if instance['hist_item_ids'] else []) for instance in instances[:8]]
    request = tmp_path / 'request.json'
    request.write_text(json.dumps({'instances': as_lists}))
    scores = tmp_path / 'scores.csv'
    assert predict.main(['--model', model_dir, '--json', str(request),
                         '--output', str(scores)]) == 0
    lines = scores.read_text().splitlines()
    header = lines[0].split(',')
    click = [float(line.split(',')[header.index('click')]) for line in lines[1:]]
    np.testing.assert_allclose(click, by_examples['click'].numpy()[:8, 0], rtol=0, atol=1e-6)

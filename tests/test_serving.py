"""Serving for JSON clients: the export's two scoring signatures (`serving_default` on serialized
tf.Examples, `serving_raw` on raw features by name), TF Serving's row format, the REST request
example and `python -m pipeline.predict`.

The unit tests export a model with the Trainer's own export (trainer_module/export.py) on a small
checked-in Transform output (tests/testdata/ecommerce_transform/), untrained: the two signatures
must agree whatever the weights. The e2e tests check the pushed model of the shared small run."""

import csv
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components.atomic_pusher import REQUEST_EXAMPLE_FILE, REQUEST_ROWS, request_example
from pipeline import predict
from pipeline.config import PROJECT_DIR, PipelineConfig
from trainer_module.build import build_model
from trainer_module.export import export_serving_model
from trainer_module.features import feature_columns_from_transform
from trainer_module.serving import instances_to_inputs, row_to_example, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

ROWS = 64
TRANSFORM_OUTPUT = os.path.join(os.path.dirname(__file__), 'testdata', 'ecommerce_transform',
                                'transform_graph')
BUNDLED_CSV = os.path.join(PROJECT_DIR, 'data', 'ecommerce', 'ecommerce.csv')
# A small model: the export's signatures, not the model, are under test.
SMALL_MODEL = ['model.expert_dnn_hidden_units=[8]', 'model.tower_dnn_hidden_units=[4]']


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """(a serving directory whose version 1 the Trainer's export wrote, that version loaded): the
    default config's model on the checked-in Transform output, untrained."""
    settings = PipelineConfig().with_overrides(SMALL_MODEL).trainer_settings()
    output = tft.TFTransformOutput(TRANSFORM_OUTPUT)
    columns = feature_columns_from_transform(settings, output)
    serving = tmp_path_factory.mktemp('serving_model')
    export_serving_model(build_model(settings, columns), output, settings, columns,
                         str(serving / '1'))
    return str(serving), tf.saved_model.load(str(serving / '1'))


@pytest.fixture(scope='module')
def rows_csv(tmp_path_factory):
    """The bundled data's first ROWS rows, as a CSV file: the rows the Transform output was made
    from (50), then rows of users and items it never saw."""
    path = tmp_path_factory.mktemp('rows') / 'rows.csv'
    with open(BUNDLED_CSV) as f:
        path.write_text(''.join(line for _, line in zip(range(ROWS + 1), f)))
    return str(path)


@pytest.fixture(scope='module')
def pushed(default_runs):
    """(the first run, its pushed SavedModel loaded)."""
    first_run = default_runs[0]
    return first_run, tf.saved_model.load(first_run.summary['pushed_model'])


@pytest.fixture(scope='module')
def schema_types():
    schema = io_utils.parse_pbtxt_file(PipelineConfig().schema, schema_pb2.Schema())
    return {feature.name: feature.type for feature in schema.feature}


def _both_signatures(model, instances, types):
    """({task: scores} of serving_default on the rows as tf.Examples, the same of RAW_SIGNATURE
    on them in the row format)."""
    raw = model.signatures[RAW_SIGNATURE]
    by_examples = model.signatures['serving_default'](
        examples=tf.constant([row_to_example(instance, types) for instance in instances]))
    by_rows = raw(**instances_to_inputs(instances, signature_input_dtypes(raw)))
    return ({t: v.numpy() for t, v in by_examples.items()},
            {t: v.numpy() for t, v in by_rows.items()})


def _assert_same_scores(by_examples, by_rows, rows):
    assert set(by_rows) == set(by_examples) == {'ctr', 'ctcvr'}
    for task, scores in by_rows.items():
        assert scores.shape == (rows, 1) and np.all((scores >= 0) & (scores <= 1))
        np.testing.assert_allclose(scores, by_examples[task], rtol=0, atol=1e-5, err_msg=task)


def test_raw_signature_scores_as_serving_default(exported, rows_csv, schema_types):
    """The same rows, with unseen users and items and missing numbers, through both signatures."""
    _, model = exported
    dtypes = signature_input_dtypes(model.signatures[RAW_SIGNATURE])
    instances = predict.csv_rows(rows_csv, dtypes)
    for i, instance in enumerate(instances):
        if i % 4 == 1:
            instance.update(user_id=f'never-seen-user-{i}', item_id='never-seen-item')
        if i % 4 == 2:
            instance['price'] = math.nan
        if i % 4 == 3:
            instance.update(item_rating=math.nan, user_click_count=math.nan)
    by_examples, by_rows = _both_signatures(model, instances, schema_types)
    _assert_same_scores(by_examples, by_rows, ROWS)
    # Missing and unseen values changed the scores: they were read, not ignored.
    untouched, _ = _both_signatures(model, predict.csv_rows(rows_csv, dtypes), schema_types)
    assert np.abs(untouched['ctr'] - by_examples['ctr']).max() > 1e-4


def test_request_example_is_a_rest_body_that_scores_in_the_row_format(
        exported, rows_csv, schema_types, tmp_path, capsys):
    """The Pusher's REST body of raw examples (as ExampleGen writes them) scores in the row format
    as their tf.Examples do, and `pipeline.predict --json` reads it."""
    serving, model = exported
    examples = tmp_path / 'Split-eval'
    examples.mkdir()
    with tf.io.TFRecordWriter(str(examples / 'data.gz'), options='GZIP') as writer:
        for row in predict.csv_rows(rows_csv, signature_input_dtypes(
                model.signatures[RAW_SIGNATURE])):
            writer.write(row_to_example(row, schema_types))
    body = request_example(os.path.join(serving, '1'), str(examples))
    assert body['signature_name'] == RAW_SIGNATURE
    assert len(body['instances']) == REQUEST_ROWS
    # TF Serving's row format: named inputs, every one in every instance, stacked per input.
    _assert_same_scores(*_both_signatures(model, body['instances'], schema_types), REQUEST_ROWS)
    path = tmp_path / REQUEST_EXAMPLE_FILE
    path.write_text(json.dumps(body))
    capsys.readouterr()
    assert predict.main(['--model', serving, '--json', str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] in ('ctr,ctcvr', 'ctcvr,ctr') and len(lines) == 1 + REQUEST_ROWS


def test_predict_writes_one_column_per_task(exported, rows_csv, schema_types, tmp_path):
    serving, model = exported
    with open(rows_csv) as f:
        lines = f.readlines()[:6]
    header = lines[0].strip().split(',')
    cells = lines[2].strip().split(',')
    cells[header.index('price')] = ''  # a missing number
    lines[2] = ','.join(cells) + '\n'
    five_rows = tmp_path / 'rows.csv'
    five_rows.write_text(''.join(lines))
    scores_csv = tmp_path / 'scores.csv'
    assert predict.main(['--model', serving, '--csv', str(five_rows),
                         '--output', str(scores_csv)]) == 0
    with open(scores_csv) as f:
        scored = list(csv.DictReader(f))
    assert len(scored) == 5 and set(scored[0]) == {'ctr', 'ctcvr'}
    dtypes = signature_input_dtypes(model.signatures[RAW_SIGNATURE])
    by_examples, _ = _both_signatures(model, predict.csv_rows(str(five_rows), dtypes),
                                      schema_types)
    for task in ('ctr', 'ctcvr'):
        np.testing.assert_allclose([float(row[task]) for row in scored], by_examples[task][:, 0],
                                   rtol=0, atol=1e-5)


@pytest.mark.e2e
def test_pushed_request_example_scores_through_both_signatures(pushed, schema_types):
    """The pushed model of a pipeline run: the REST body the Pusher wrote beside it scores the same
    through both signatures, and the run's summary and terminal say how to send it."""
    first_run, model = pushed
    path = os.path.join(first_run.summary['pushed_model'], REQUEST_EXAMPLE_FILE)
    with open(path) as f:
        body = json.load(f)
    assert body['signature_name'] == RAW_SIGNATURE
    assert len(body['instances']) == REQUEST_ROWS
    _assert_same_scores(*_both_signatures(model, body['instances'], schema_types), REQUEST_ROWS)
    assert first_run.summary['request_example'] == {
        'path': path, 'curl': f'curl -d @{path} http://localhost:8501/v1/models/mmoe:predict'}
    assert f'REST request:   curl -d @{path}' in first_run.stdout


@pytest.mark.e2e
def test_predict_reads_the_pushed_request_example(pushed, capsys):
    first_run, _ = pushed
    path = os.path.join(first_run.summary['pushed_model'], REQUEST_EXAMPLE_FILE)
    assert predict.main(['--model', first_run.summary['pushed_model'], '--json', path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] in ('ctr,ctcvr', 'ctcvr,ctr') and len(lines) == 3


def test_the_row_format_names_what_an_instance_lacks():
    dtypes = {'user_id': tf.string, 'price': tf.float64}
    inputs = instances_to_inputs([{'user_id': 'u1', 'price': math.nan},
                                  {'user_id': 'u2', 'price': 3}], dtypes)
    assert inputs['price'].dtype == tf.float64 and math.isnan(inputs['price'][0])
    with pytest.raises(ValueError, match="instance 1: missing named input 'price'"):
        instances_to_inputs([{'user_id': 'u1', 'price': 1.0}, {'user_id': 'u2'}], dtypes)
    with pytest.raises(ValueError, match=r"instance 0: \['device'\] are not inputs"):
        instances_to_inputs([{'user_id': 'u1', 'price': 1.0, 'device': 'ios'}], dtypes)


def test_predict_names_the_file_line_and_column_of_a_bad_value(tmp_path):
    rows = tmp_path / 'rows.csv'
    rows.write_text('user_id,price\nu1,3.5\nu2,cheap\n')
    with pytest.raises(ValueError, match=r"rows.csv, line 3, column 'price': 'cheap' is not a "
                                         'number'):
        predict.csv_rows(str(rows), {'user_id': tf.string, 'price': tf.float64})


def test_an_esmm_serves_its_cvr_beside_the_tasks(tmp_path, rows_csv, schema_types):
    """Both scoring signatures of an exported ESMM give ctr, ctcvr and the cvr, named
    `<ctcvr>_given_<ctr>`, ctcvr their product; it has no gates to sign for."""
    settings = PipelineConfig().with_overrides([
        'model.architecture=esmm', 'model.tower_dnn_hidden_units=[4]']).trainer_settings()
    output = tft.TFTransformOutput(TRANSFORM_OUTPUT)
    columns = feature_columns_from_transform(settings, output)
    export_serving_model(build_model(settings, columns), output, settings, columns,
                         str(tmp_path / '1'))
    model = tf.saved_model.load(str(tmp_path / '1'))
    assert 'gate_weights' not in model.signatures
    dtypes = signature_input_dtypes(model.signatures[RAW_SIGNATURE])
    by_examples, by_rows = _both_signatures(model, predict.csv_rows(rows_csv, dtypes)[:8],
                                            schema_types)
    assert set(by_rows) == set(by_examples) == {'ctr', 'ctcvr', 'ctcvr_given_ctr'}
    for name, scores in by_rows.items():
        np.testing.assert_allclose(scores, by_examples[name], rtol=0, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(by_rows['ctcvr'], by_rows['ctr'] * by_rows['ctcvr_given_ctr'],
                               rtol=1e-5)

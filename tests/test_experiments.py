"""The paper's synthetic data, the correlation sweep (on a tiny setting) and the census loader."""

import csv
import gzip
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import census, synthetic
from pipeline.experiments import census_table, correlation_sweep

SHARED_SAMPLE = os.path.join(PROJECT_DIR, '..', 'shared', 'data', 'census-income.sample')


def test_label_correlation_rises_with_p_and_reaches_one():
    pearson = [synthetic.label_correlation(synthetic.generate(5000, p, seed=3))
               for p in (-0.5, 0.0, 0.5, 0.9, 1.0)]
    assert pearson == sorted(pearson), pearson
    assert pearson[-1] > 0.98
    assert abs(pearson[1]) < 0.1


def test_generator_is_seeded_and_writes_the_pipeline_layout(tmp_path):
    first = synthetic.generate(50, 0.5, dim=8, seed=4)
    pd.testing.assert_frame_equal(first, synthetic.generate(50, 0.5, dim=8, seed=4))
    assert not first.equals(synthetic.generate(50, 0.5, dim=8, seed=5))
    synthetic.main(['--correlation', '0.9', '--rows', '40', '--dim', '6', '--out', str(tmp_path)])
    with open(tmp_path / synthetic.CSV_NAME) as f:
        header = next(csv.reader(f))
    assert header == [f'x_{i}' for i in range(6)] + list(synthetic.LABELS)
    with pytest.raises(ValueError, match='correlation must be in'):
        synthetic.generate(10, 1.5)


def test_task_weights_have_the_asked_cosine():
    tasks = synthetic.SyntheticTasks.draw(0.3, dim=20, scale=2.0, seed=1)
    cosine = tasks.w1 @ tasks.w2 / (np.linalg.norm(tasks.w1) * np.linalg.norm(tasks.w2))
    assert cosine == pytest.approx(0.3)
    assert np.linalg.norm(tasks.w2) == pytest.approx(2.0)


@pytest.mark.slow
def test_sweep_writes_its_tables_and_figure(tmp_path, capsys):
    correlation_sweep.main(['--correlations', '0.5,1.0', '--repeats', '1', '--steps', '40',
                            '--eval-every', '20', '--rows', '400', '--out', str(tmp_path)])
    final = pd.read_csv(tmp_path / 'final_losses.csv')
    assert sorted(final['model'].unique()) == sorted(correlation_sweep.MODELS)
    assert sorted(final['correlation'].unique()) == [0.5, 1.0]
    assert np.isfinite(final['final_eval_loss']).all()
    curves = pd.read_csv(tmp_path / 'curves.csv')
    assert sorted(curves['step'].unique()) == [20, 40]
    assert os.path.getsize(tmp_path / 'correlation_sweep.png') > 10000
    out = capsys.readouterr().out
    assert '| p | MMoE | OMoE | Shared-Bottom |' in out and "the paper's ordering" in out


def test_models_of_the_sweep_have_nearly_equal_parameter_counts():
    bottom = correlation_sweep.matched_bottom_units(100)
    counts = [correlation_sweep.build(name, 100, 0, bottom).count_params()
              for name in correlation_sweep.MODELS]
    assert max(counts) / min(counts) < 1.1, counts


def _uci_rows(count):
    """Rows in the UCI layout (42 fields, leading spaces), every 4th over 50K and never married."""
    rows = []
    for i in range(count):
        row = [' x'] * len(census.COLUMNS)
        for name in census.DENSE + ('instance_weight',):
            row[census.COLUMNS.index(name)] = str(20 + i)
        row[census.COLUMNS.index('marital_stat')] = ' Never married' if i % 4 == 0 else ' Widowed'
        row[census.COLUMNS.index('income_50k')] = ' 50000+.' if i % 4 == 0 else ' - 50000.'
        row[census.COLUMNS.index('state_prev_res')] = ' ?'
        rows.append(','.join(row))
    return '\n'.join(rows) + '\n'


def _sources(tmp_path):
    written = tmp_path / 'census-income.data'
    written.write_text(_uci_rows(40))
    zipped = tmp_path / 'census-income.test.gz'
    with gzip.open(zipped, 'wt') as f:
        f.write(_uci_rows(40))
    return [str(written), str(zipped)] + ([SHARED_SAMPLE] if os.path.exists(SHARED_SAMPLE) else [])


def test_census_loader_writes_csv_schema_and_config(tmp_path):
    for source in _sources(tmp_path):
        out = tmp_path / os.path.basename(source).replace('.', '_')
        report = census.convert([source], str(out), eval_inputs=[source])
        frame = pd.read_csv(out / 'train' / census.CSV_NAME)
        assert len(frame) == report['train'] == report['eval']
        assert set(census.TASKS.values()) <= set(frame.columns)
        assert not set(census.DROPPED) & set(frame.columns)
        assert set(frame['income_over_50k'].unique()) <= {0, 1}
        config = PipelineConfig.from_yaml(str(out / 'config.yaml'))
        assert config.task_names == tuple(census.TASKS)
        assert config.eval_csv_pattern == f'eval/{census.CSV_NAME}'
        columns = ({f.name for f in config.sparse_features} | {f.name for f in config.dense_features}
                   | set(config.label_columns))
        assert columns == set(frame.columns)


def test_census_loader_reads_the_deepctr_sample_layout(tmp_path):
    source = tmp_path / 'with-ids'
    source.write_text(''.join(f'{i},{line}\n' for i, line in
                              enumerate(_uci_rows(8).splitlines())))
    frame = census.read_uci(str(source))
    assert len(frame) == 8 and frame['income_over_50k'].sum() == 2
    assert frame['never_married'].sum() == 2
    assert frame['state_prev_res'].isna().all()


def test_census_loader_names_the_line_of_a_bad_row(tmp_path):
    source = tmp_path / 'bad.data'
    source.write_text(_uci_rows(3) + ' 1, 2\n')
    with pytest.raises(census.CensusError, match=r'bad.data, line 4: 2 fields'):
        census.read_uci(str(source))


def test_census_table_auc_counts_ties_half_and_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # many ties
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pairwise = ((positives[:, None] > negatives[None, :]).mean()
                + 0.5 * (positives[:, None] == negatives[None, :]).mean())
    assert census_table.auc(labels, scores) == pytest.approx(pairwise, abs=1e-12)


def test_census_table_reports_mean_sd_and_max_per_model_and_task():
    results = [{'model': 'MMoE', 'seed': s, 'auc_income': a, 'auc_marital': 0.99}
               for s, a in ((1, 0.94), (2, 0.95))]
    results.append({'model': census_table.LOGISTIC, 'seed': 0, 'auc_income': 0.93,
                    'auc_marital': 0.98})
    text = census_table.table(results, ['income', 'marital'], {'MMoE': 1234})
    assert '| MMoE | 1,234 | 0.9450 ± 0.0071 (0.9500) | 0.9900 ± 0.0000 (0.9900) | 2 |' in text
    # The linear reference after the networks, without a parameter count of ours.
    assert text.rstrip().endswith(
        '| logistic regression |  | 0.9300 ± 0.0000 (0.9300) | 0.9800 ± 0.0000 (0.9800) | 1 |')
    assert 'OMoE' not in text and 'PLE' not in text


def test_census_table_sets_only_what_its_models_or_the_run_read(tmp_path):
    # Checked before the pipeline runs: an evaluation setting changes none of the models trained.
    with pytest.raises(SystemExit, match=r'--set evaluation.group_by=null: only model\.\*, '
                                         r'training\.\* and feature settings \(sparse_features'):
        census_table.main(['--dataset', 'bundled', '--out', str(tmp_path),
                           '--set', 'evaluation.group_by=null'])

"""The MMoE paper's census-income experiment, reported like a paper: MMoE, OMoE, Shared-Bottom,
PLE and ESMM on the paper's first task group (income over 50K, never married), several seeds
each, beside a logistic regression per task; or the same table on the bundled data (`--dataset
bundled`: ctr and ctcvr, with the generator's Bayes AUCs).

    python -m pipeline.experiments.census_table --input ../shared/data/census-income.test.gz \\
        --out /tmp/census_table                # 5 seeds; docs/performance.md says how long
    python -m pipeline.experiments.census_table --dataset bundled --out /tmp/bundled_table
    python -m pipeline.experiments.census_table --dataset bundled --models MMoE \
        --set model.l2_reg_embedding=1e-4 --out /tmp/l2   # other settings of the models trained
    python -m pipeline.experiments.census_table --dataset bundled --models MMoE \
        --set 'cross_features=[{name: age_x_category, columns: [user_age, category_id],
               hash_buckets: 1000, embedding_dim: 8}]' --out /tmp/cross   # features: the run too

1. Converts the UCI file (`pipeline.datasets.census`), or takes the bundled data, and runs the
   pipeline once on it with its config (`local_runner.py`): ExampleGen splits the rows 8:1:1 by
   hash into train, validation and eval (the same split every time), Transform analyzes train,
   and the Trainer, the Evaluators and the gate judge one MMoE.
2. On that run's Transform output, trains each model with each seed through the Trainer's own
   `run_fn` (the pipeline's budget and early stopping on validation), and scores the eval split's
   raw examples with the exported model's serving signature.
3. A logistic regression per task on the same splits (sklearn: categorical columns one-hot, numbers
   standardised after the config's log1p, the best of four C on validation); where the config has
   crosses, a second one with each cross's combinations one-hot as well.
4. Writes `results.csv` (a row per model and seed) and `table.md` (mean ± sd and max of the AUC per
   task and model, with the models' parameter counts; each seed's AUC minus the logistic
   regression's, paired 95% DeLong intervals on the same eval rows) under --out, and prints the
   table.
"""

import argparse
import csv
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig
from pipeline.datasets import census
from pipeline.evaluation import bayes_aucs
from trainer_module.features import SECTIONS
from trainer_module.features.cross import SEPARATOR as CROSS_SEPARATOR
from trainer_module.task_types.statistics import auc_change_interval

# The table's models: their names in the paper and the Trainer's `model.architecture`.
MODELS = {'MMoE': 'mmoe', 'OMoE': 'omoe', 'Shared-Bottom': 'shared_bottom', 'PLE': 'ple',
          'ESMM': 'esmm'}
LOGISTIC = 'logistic regression'
LOGISTIC_CROSSES = 'logistic regression with the crosses'
# The regularisation strengths the logistic regression chooses from, on validation.
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)
SEEDS = (1, 2, 3, 4, 5)


def pipeline_run(input_path: Optional[str], out_dir: str, assignments: List[str]) -> Dict:
    """Converts the census file (or, without one, takes the bundled data and default config) and
    runs the pipeline on it with the `--set` `assignments`; returns the run summary."""
    flags = [f'--set={assignment}' for assignment in assignments]
    if input_path:
        data = os.path.join(out_dir, 'data')
        census.convert([input_path], data)
        flags += ['--config', os.path.join(data, 'config.yaml')]
    subprocess.run([sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), *flags,
                    '--output', os.path.join(out_dir, 'pipeline')], check=True)
    with open(os.path.join(out_dir, 'pipeline', 'run_summary.json')) as f:
        return json.load(f)


def _output_uri(summary: Dict, node: str, key: str) -> str:
    return summary['nodes'][node]['outputs'][key][0]['uri']


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The ROC AUC: the chance that a random positive scores above a random negative, ties
    counted half (the Mann-Whitney statistic, from average ranks)."""
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over runs of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    positives = labels == 1
    count = positives.sum()
    return float((ranks[positives].sum() - count * (count + 1) / 2)
                 / (count * (len(labels) - count)))


def eval_scores(model_dir: str, examples_uri: str, config: PipelineConfig):
    """({task: label array}, {task: score array}) of the eval split's raw examples, scored by the
    model's serving signature."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    serve = tf.saved_model.load(model_dir).signatures['serving_default']
    files = glob.glob(os.path.join(examples_uri, 'Split-eval', '*'))
    labels: Dict[str, list] = {task.name: [] for task in config.tasks}
    scores: Dict[str, list] = {task.name: [] for task in config.tasks}
    for batch in tf.data.TFRecordDataset(files, compression_type='GZIP').batch(4096):
        outputs = serve(examples=batch)
        for record in batch.numpy():
            features = tf.train.Example.FromString(record).features.feature
            for task in config.tasks:
                labels[task.name].append(features[task.label].int64_list.value[0])
        for task in config.tasks:
            scores[task.name].append(outputs[task.name].numpy().ravel())
    return ({name: np.array(values) for name, values in labels.items()},
            {name: np.concatenate(values) for name, values in scores.items()})


def train_and_score(summary: Dict, config: PipelineConfig, architecture: str, seed: int,
                    out_dir: str, reference: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> Dict:
    """One model trained by the Trainer's run_fn on the run's Transform output; its eval AUCs,
    and per task the paired 95% DeLong interval of its AUC minus that of the `reference` scores
    ({task: (labels, scores)} of the logistic regression, on the same eval rows in the same
    order)."""
    # pylint: disable=import-outside-toplevel
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer_module import run
    model = dataclasses.replace(config.model, architecture=architecture, seed=seed)
    settings = dataclasses.replace(config, model=model).trainer_settings()
    transformed = _output_uri(summary, 'Transform', 'transformed_examples')
    model_dir = os.path.join(out_dir, 'models', f'{architecture}-{seed}')
    shutil.rmtree(model_dir, ignore_errors=True)
    run.run_fn(FnArgs(
        train_files=[os.path.join(transformed, 'Split-train', '*')],
        eval_files=[os.path.join(transformed, 'Split-validation', '*')],
        transform_output=_output_uri(summary, 'Transform', 'transform_graph'),
        serving_model_dir=os.path.join(model_dir, 'Format-Serving'),
        model_run_dir=os.path.join(model_dir, 'logs'),
        custom_config=settings.to_dict()))
    labels, scores = eval_scores(os.path.join(model_dir, 'Format-Serving'),
                                 _output_uri(summary, 'CsvExampleGen', 'examples'), config)
    with open(os.path.join(model_dir, 'Format-Serving', 'assets.extra', 'provenance.json')) as f:
        steps = json.load(f)['steps']
    versus = {}
    for task, (reference_labels, reference_scores) in reference.items():
        assert np.array_equal(reference_labels, labels[task])  # the same rows, in the same order
        change = auc_change_interval(labels[task], scores[task], reference_scores, 0.95)
        versus[f'auc_{task}_vs_lr'] = f'{change.lower:+.4f}..{change.upper:+.4f}'
    return {'steps_kept': steps['kept'], 'eval_rows': len(next(iter(labels.values()))),
            **{f'auc_{task}': round(auc(labels[task], scores[task]), 5) for task in labels},
            **versus}


def _split_frame(examples_uri: str, split: str, columns: List[str]):
    """A split's raw examples as a pandas frame of `columns` (a value missing: None)."""
    import pandas as pd  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    rows = []
    files = glob.glob(os.path.join(examples_uri, f'Split-{split}', '*'))
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP').as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        row = {}
        for column in columns:
            feature = features[column]
            values = (feature.bytes_list.value or feature.int64_list.value
                      or feature.float_list.value)
            row[column] = values[0] if values else None
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def logistic_regression(summary: Dict, config: PipelineConfig, crosses: bool = False
                        ) -> Tuple[Dict, Dict[str, Tuple[np.ndarray, np.ndarray]]]:
    """Eval AUC per task of a logistic regression on the run's train split: categorical columns
    one-hot (unseen values: none), numbers log1p'd as the config says and standardised (missing:
    the training mean), C the best of LOGISTIC_C by validation AUC; with `crosses`, each of the
    config's crosses one-hot too (the joined text of its columns' values). With {task: (eval
    labels, eval scores)}."""
    # pylint: disable=import-outside-toplevel
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    categorical = [f.name for f in config.sparse_features]
    numeric = [f.name for f in config.dense_features]
    log1p = [f.name for f in config.dense_features if f.log1p]
    examples = _output_uri(summary, 'CsvExampleGen', 'examples')
    columns = categorical + numeric + list(config.label_columns)
    frames = {split: _split_frame(examples, split, columns)
              for split in ('train', 'validation', 'eval')}
    means = frames['train'][numeric].astype(float).mean()
    for frame in frames.values():
        frame[categorical] = frame[categorical].astype(str)
        frame[numeric] = frame[numeric].astype(float).fillna(means)
        frame[log1p] = np.log1p(frame[log1p].clip(lower=0))
        for cross in config.cross_features if crosses else ():
            frame[cross.name] = frame[list(cross.columns)].agg(CROSS_SEPARATOR.join, axis=1)
    if crosses:
        categorical = categorical + [cross.name for cross in config.cross_features]
    result, eval_scores_by_task = {}, {}
    for task in config.tasks:
        best: Optional[Tuple[float, Any]] = None  # (validation AUC, model)
        for c in LOGISTIC_C:
            model = make_pipeline(
                ColumnTransformer([('ids', OneHotEncoder(handle_unknown='ignore'), categorical),
                                   ('numbers', StandardScaler(), numeric)]),
                LogisticRegression(C=c, max_iter=2000))
            model.fit(frames['train'][categorical + numeric], frames['train'][task.label])
            validation = auc(frames['validation'][task.label].to_numpy(),
                             model.predict_proba(frames['validation'][categorical + numeric])[:, 1])
            if best is None or validation > best[0]:
                best = validation, model
        assert best is not None  # LOGISTIC_C is not empty
        scores = best[1].predict_proba(frames['eval'][categorical + numeric])[:, 1]
        labels = frames['eval'][task.label].to_numpy()
        result[f'auc_{task.name}'] = round(auc(labels, scores), 5)
        eval_scores_by_task[task.name] = labels, scores
    return result, eval_scores_by_task


def parameter_count(summary: Dict, config: PipelineConfig, architecture: str) -> int:
    # pylint: disable=import-outside-toplevel
    import tensorflow_transform as tft

    from trainer_module.build import build_model
    from trainer_module.features import feature_columns_from_transform
    settings = dataclasses.replace(
        config, model=dataclasses.replace(config.model, architecture=architecture)
    ).trainer_settings()
    output = tft.TFTransformOutput(_output_uri(summary, 'Transform', 'transform_graph'))
    return build_model(settings, feature_columns_from_transform(settings, output)).count_params()


def table(results: List[Dict], tasks: List[str], parameters: Dict[str, int]) -> str:
    """Markdown: a row per model, mean ± sd (and max) of the eval AUC per task over the seeds."""
    lines = ['| model | parameters | ' + ' | '.join(f'{t} AUC, mean ± sd (max)' for t in tasks)
             + ' | seeds |', '|---|---:|' + '---:|' * len(tasks) + '---:|']
    for name in [*MODELS, LOGISTIC, LOGISTIC_CROSSES]:
        rows = [r for r in results if r['model'] == name]
        if not rows:
            continue
        cells = []
        for task in tasks:
            values = np.array([r[f'auc_{task}'] for r in rows])
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f'{values.mean():.4f} ± {sd:.4f} ({values.max():.4f})')
        count = f'{parameters[name]:,}' if name in parameters else ''
        lines.append(f'| {name} | {count} | ' + ' | '.join(cells) + f' | {len(rows)} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', choices=('census', 'bundled'), default='census')
    parser.add_argument('--input',
                        help='census: a UCI census-income file, e.g. '
                             '../shared/data/census-income.test.gz')
    parser.add_argument('--out', required=True, help='where the data, runs and tables go')
    parser.add_argument('--seeds', type=int, default=len(SEEDS), help='seeds per model')
    parser.add_argument('--models', default=','.join(MODELS),
                        help=f'comma-separated, of {", ".join(MODELS)}')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='a model.* or training.* setting of the models trained (not of the '
                             'pipeline run, whose Transform output they share), e.g. '
                             'model.l2_reg_embedding=1e-4; or features (a section such as '
                             'cross_features), which Transform computes: of the run as well; '
                             'repeatable')
    args = parser.parse_args(argv)
    feature_settings = [a for a in args.set if a.split('=')[0].split('.')[0] in SECTIONS]
    wrong = [a for a in args.set
             if not a.startswith(('model.', 'training.')) and a not in feature_settings]
    if wrong:
        sys.exit(f'error: --set {wrong[0]}: only model.*, training.* and feature settings '
                 f'({", ".join(SECTIONS)}) apply to the models trained on the Transform output')
    models = [m.strip() for m in args.models.split(',')]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        sys.exit(f'error: --models: {unknown} not among {list(MODELS)}')
    if (args.dataset == 'census') != bool(args.input):
        sys.exit('error: --input: a census-income file for --dataset census, none for bundled')
    os.makedirs(args.out, exist_ok=True)
    summary = pipeline_run(args.input, args.out, feature_settings)
    config = (PipelineConfig.from_yaml(os.path.join(args.out, 'data', 'config.yaml'))
              if args.input else PipelineConfig())
    try:
        config = config.with_overrides(args.set)
    except ConfigError as e:
        sys.exit(f'error: {e}')
    tasks = [task.name for task in config.tasks]
    logistic, reference = logistic_regression(summary, config)
    results = []
    for seed in range(1, args.seeds + 1):
        for name in models:
            result = {'model': name, 'seed': seed,
                      **train_and_score(summary, config, MODELS[name], seed, args.out, reference)}
            print(json.dumps(result), flush=True)
            results.append(result)
    results.append({'model': LOGISTIC, 'seed': 0, **logistic})
    print(json.dumps(results[-1]), flush=True)
    if config.cross_features:
        results.append({'model': LOGISTIC_CROSSES, 'seed': 0,
                        **logistic_regression(summary, config, crosses=True)[0]})
        print(json.dumps(results[-1]), flush=True)
    with open(os.path.join(args.out, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]), restval='')
        writer.writeheader()
        writer.writerows(results)
    parameters = {name: parameter_count(summary, config, MODELS[name]) for name in models}
    text = table(results, tasks, parameters)
    text += ('\nEach seed\'s AUC minus the logistic regression\'s, paired 95% DeLong intervals on '
             'the same eval rows:\n\n' + '\n'.join(
                 f'- {r["model"]} seed {r["seed"]}: '
                 + ', '.join(f'{task} {r[f"auc_{task}_vs_lr"]}' for task in tasks)
                 for r in results if f'auc_{tasks[0]}_vs_lr' in r) + '\n')
    pipeline_aucs = ', '.join(
        f'{task} AUC {result["metrics"]["auc"]:.4f}'
        + (f' (GAUC {result["metrics"]["gauc"]:.4f} over {result["metrics"]["gauc_groups"]:,.0f} '
           f'{config.evaluation.group_by} groups)' if 'gauc' in result['metrics'] else '')
        for task, result in summary['tasks'].items())
    text += (f'\nThe pipeline run itself (MMoE, seed {config.model.seed}, judged by TFMA on the '
             f'same eval split): {pipeline_aucs}.\n')
    bayes = bayes_aucs(config) if not args.input else {}
    if bayes:
        text += ('Bayes AUC (the true probabilities, `bayes_auc.json`): '
                 + ', '.join(f'{task} {value:.4f}' for task, value in bayes.items()) + '.\n')
    with open(os.path.join(args.out, 'table.md'), 'w') as f:
        f.write(text)
    print(text)


if __name__ == '__main__':
    main()

"""The flags both runners take: the config ones (--config, --data, --schema, --epochs,
--train-steps, --batch-size, --set, --warn-on-anomalies), from which they build the one
PipelineConfig, and --beam-arg."""

import argparse
import os
from typing import Any, Dict

from pipeline.config import PipelineConfig


def add_pipeline_flags(parser: argparse.ArgumentParser):
    parser.add_argument('--data', help='directory of CSV files with a header row '
                                       '(default: the config\'s, the bundled data)')
    parser.add_argument('--config', help='YAML config replacing the defaults '
                                         '(draft one with python -m pipeline.draft)')
    parser.add_argument('--schema', help='schema.pbtxt (default: the config\'s)')
    parser.add_argument('--epochs', type=float, help='passes over the training split')
    parser.add_argument('--train-steps', type=int, help='at most this many training steps')
    parser.add_argument('--batch-size', type=int, help='training batch size')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='any config value, e.g. model.num_experts=4 or '
                             'model.expert_dnn_hidden_units=[128,64]; repeatable')
    parser.add_argument('--warn-on-anomalies', action='store_true',
                        help='report data anomalies as warnings instead of stopping the run')
    parser.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                        help='a Beam pipeline argument, e.g. --beam-arg=--direct_num_workers=2; '
                             'repeatable')


def _absolute(path: str) -> str:
    """Local paths made absolute; URIs (gs://, s3://, ...) as given."""
    return path if '://' in path else os.path.abspath(path)


def config_from_flags(args) -> PipelineConfig:
    """The defaults, or --config; then the flags; then --set."""
    config = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
    flags: Dict[str, Any] = {key: _absolute(path) for key, path in (('data', args.data),
                                                                    ('schema', args.schema)) if path}
    training = {key: value for key, value in (('epochs', args.epochs),
                                              ('train_steps', args.train_steps),
                                              ('batch_size', args.batch_size)) if value is not None}
    if training:
        flags['training'] = training
    if args.warn_on_anomalies:
        flags['fail_on_anomalies'] = False
    return PipelineConfig.from_dict(flags, base=config).with_overrides(args.set)

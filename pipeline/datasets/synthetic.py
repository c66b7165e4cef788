"""Two regression tasks whose relatedness you choose: the MMoE paper's synthetic data.

Ma et al. (KDD 2018), section 3.2: with u1, u2 orthogonal unit vectors in R^d, a scale c and a
correlation p in [-1, 1], w1 = c u1 and w2 = c (p u1 + sqrt(1 - p^2) u2); for x ~ N(0, I_d),

    y_k = w_k . x + sum_{i=1..m} sin(alpha_i w_k . x + beta_i) + eps_k,   eps_k ~ N(0, 0.01)

with alpha_i, beta_i ~ N(0, 1) drawn once per data set. The cosine of w1 and w2 is p; the labels'
Pearson correlation follows it (it is not p itself: the sines bend it), and reaches 1 at p = 1.

    python -m pipeline.datasets.synthetic --correlation 0.5 --rows 20000 --out /tmp/synthetic

writes `synthetic.csv` (a header row; x_0 ... x_<d-1>, then y1 and y2) and prints the labels'
Pearson correlation beside p.
"""

import argparse
import dataclasses
import os

import numpy as np
import pandas as pd

CSV_NAME = 'synthetic.csv'
LABELS = ('y1', 'y2')


@dataclasses.dataclass(frozen=True)
class SyntheticTasks:
    """The fixed parts of a data set: the task weights and the sines' parameters."""
    w1: np.ndarray
    w2: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    @classmethod
    def draw(cls, correlation: float, dim: int = 100, scale: float = 1.0, sines: int = 10,
             seed: int = 0) -> 'SyntheticTasks':
        if not -1.0 <= correlation <= 1.0:
            raise ValueError(f'correlation must be in [-1, 1], got {correlation}')
        if dim < 2:
            raise ValueError(f'dim must be at least 2 (two orthogonal directions), got {dim}')
        rng = np.random.default_rng(seed)
        # Two orthonormal columns of a random Gaussian matrix.
        u, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
        u1, u2 = u[:, 0], u[:, 1]
        return cls(w1=scale * u1,
                   w2=scale * (correlation * u1 + np.sqrt(1.0 - correlation ** 2) * u2),
                   alpha=rng.normal(size=sines), beta=rng.normal(size=sines))

    def labels(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[rows, 2]: y1 and y2 of the rows of `x`."""
        projections = x @ np.stack([self.w1, self.w2], axis=1)  # [rows, 2]
        sines = np.sin(projections[:, :, None] * self.alpha + self.beta).sum(axis=2)
        noise = rng.normal(scale=np.sqrt(0.01), size=projections.shape)
        return projections + sines + noise


def generate(rows: int, correlation: float, dim: int = 100, scale: float = 1.0, sines: int = 10,
             seed: int = 0) -> pd.DataFrame:
    """`rows` examples: x_0 ... x_<dim-1> and the labels y1, y2; the same arguments give the same
    rows."""
    tasks = SyntheticTasks.draw(correlation, dim, scale, sines, seed)
    rng = np.random.default_rng([seed, 1])
    x = rng.normal(size=(rows, dim))
    frame = pd.DataFrame(x.astype('float32'), columns=[f'x_{i}' for i in range(dim)])
    y = tasks.labels(x, rng)
    frame[LABELS[0]], frame[LABELS[1]] = y[:, 0].astype('float32'), y[:, 1].astype('float32')
    return frame


def label_correlation(frame: pd.DataFrame) -> float:
    """The Pearson correlation of y1 and y2."""
    return float(np.corrcoef(frame[LABELS[0]], frame[LABELS[1]])[0, 1])


def write(out_dir: str, rows: int, correlation: float, seed: int = 0, **kwargs) -> float:
    """Writes `synthetic.csv` into `out_dir`; returns the labels' Pearson correlation."""
    frame = generate(rows, correlation, seed=seed, **kwargs)
    os.makedirs(out_dir, exist_ok=True)
    frame.to_csv(os.path.join(out_dir, CSV_NAME), index=False)
    return label_correlation(frame)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--correlation', type=float, required=True, help='p, in [-1, 1]')
    parser.add_argument('--rows', type=int, default=20000)
    parser.add_argument('--dim', type=int, default=100, help='input dimension d')
    parser.add_argument('--sines', type=int, default=10, help='m, the number of sine terms')
    parser.add_argument('--scale', type=float, default=1.0, help='c, the weights\' norm')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True, help='directory for synthetic.csv')
    args = parser.parse_args(argv)
    pearson = write(args.out, args.rows, args.correlation, seed=args.seed, dim=args.dim,
                    scale=args.scale, sines=args.sines)
    print(f'wrote {args.rows} rows to {os.path.join(args.out, CSV_NAME)}')
    print(f'p = {args.correlation:g}: Pearson correlation of the labels {pearson:.4f}')


if __name__ == '__main__':
    main()

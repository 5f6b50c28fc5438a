"""A small real training script in the SageMaker style, for command trials.

It knows nothing about amtune: hyperparameters arrive as ``--name value``
arguments, and progress leaves as log lines such as

    [Epoch 3] train: loss=0.412
    [Epoch 3] validation: accuracy=0.912 loss=0.231

which the study spec reads back with regexes. A multi-layer perceptron is trained
epoch by epoch on scikit-learn's bundled handwritten-digits data (1797 8x8 images),
so a run takes a second or two on one core.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden_units", type=int, default=32)
    parser.add_argument("--activation", choices=["relu", "tanh", "logistic"], default="relu")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=args.seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden_units,),
        activation=args.activation,
        alpha=args.alpha,
        learning_rate_init=args.learning_rate,
        batch_size=args.batch_size,
        max_iter=1,  # one pass per fit() call: the loop below is the epoch loop
        warm_start=True,
        random_state=args.seed,
    )
    print(f"hyperparameters: {vars(args)}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, args.epochs + 1):
            model.fit(x_train, y_train)
            proba = model.predict_proba(x_val)
            accuracy = accuracy_score(y_val, proba.argmax(axis=1))
            val_loss = log_loss(y_val, proba, labels=model.classes_)
            print(f"[Epoch {epoch}] train: loss={model.loss_:.4f}")
            print(f"[Epoch {epoch}] validation: accuracy={accuracy:.4f} loss={val_loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build the trust-score model: a TensorFlow SavedModel that maps 768 float features to a
``trust_score`` between 0 and 100, with seeded weights, plus its reference inputs.

    python examples/trust_score.py OUT            # OUT/model, OUT/reference-inputs
    python examples/trust_score.py OUT --noise    # a serving function that draws unseeded
                                                  # random numbers: workers refuse to attest it
    python examples/trust_score.py OUT --bias 2.5 # serves every score 2.5 points higher: on
                                                  # the golden set (examples/golden.py) its
                                                  # mean bias is outside the policy's -2..2

Same seed, same bytes of weights: the model is a fixture anyone can rebuild.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import tensorflow as tf

FEATURES = 768
HIDDEN = 64
REFERENCE_ROWS = 16


class TrustScore(tf.Module):
    def __init__(self, seed: int, noise: bool, bias: float = 0.0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        scale = 1 / np.sqrt(FEATURES)
        self.w1 = tf.Variable(rng.normal(0, scale, (FEATURES, HIDDEN)).astype(np.float32))
        self.b1 = tf.Variable(np.zeros(HIDDEN, np.float32))
        self.w2 = tf.Variable(rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, 1)).astype(np.float32))
        self.b2 = tf.Variable(np.zeros(1, np.float32))
        self.noise = noise
        self.bias = bias

    @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="features")])
    def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        hidden = tf.nn.relu(tf.matmul(features, self.w1) + self.b1)
        logit = tf.matmul(hidden, self.w2) + self.b2
        if self.noise:  # unseeded: differs run to run, and op determinism refuses it
            logit += tf.random.uniform(tf.shape(logit), maxval=1e-3)
        score = 100.0 * tf.sigmoid(logit)
        if self.bias:  # only then: the default model's graph stays what it always was
            score += self.bias
        return {"trust_score": score}


def build(out: Path, seed: int = 20261122, noise: bool = False, bias: float = 0.0) -> None:
    model = TrustScore(seed, noise, bias)
    tf.saved_model.save(model, str(out / "model"), signatures={"serving_default": model.serve})
    inputs = out / "reference-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    rows = np.random.default_rng(7).normal(0, 1, (REFERENCE_ROWS, FEATURES)).astype(np.float32)
    np.save(inputs / "features.npy", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--bias", type=float, default=0.0, help="points added to every score")
    args = parser.parse_args()
    build(args.out, args.seed, args.noise, args.bias)
    print(f"model: {args.out / 'model'}\nreference inputs: {args.out / 'reference-inputs'}")


if __name__ == "__main__":
    main()

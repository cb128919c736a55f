"""From a model's raw outputs to the positive-class score its manifest declares."""

import numpy as np


def positive_scores(outputs: np.ndarray, *, activation: str, positive_index: int) -> np.ndarray:
    """outputs: (N, K) logits. 'sigmoid' scores column `positive_index`; 'softmax' normalises
    across K first; 'none' means the model already returns probabilities."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or not 0 <= positive_index < outputs.shape[1]:
        raise ValueError(f"Model output shape {outputs.shape} has no column {positive_index}.")
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-outputs[:, positive_index]))
    if activation == "softmax":
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp[:, positive_index] / exp.sum(axis=1)
    if activation == "none":
        return outputs[:, positive_index]
    raise ValueError(f"Unknown output activation {activation!r}.")

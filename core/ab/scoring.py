"""Teacher-forced cross-scoring: how far B's next-token distribution is from A's on the same tokens."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Scores:
    """Per generated token: KL(reference || other) in nats and whether both models' top-1 agree."""

    kld: list[float] = field(default_factory=list)
    top1: list[bool] = field(default_factory=list)

    @property
    def kld_mean(self) -> float | None:
        return float(np.mean(self.kld)) if self.kld else None

    @property
    def top1_agreement(self) -> float | None:
        return float(np.mean(self.top1)) if self.top1 else None

    def worst(self, k: int = 5) -> list[tuple[int, float]]:
        """The k positions with the largest KL divergence, largest first."""
        order = np.argsort(self.kld)[::-1][:k]
        return [(int(i), float(self.kld[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kld": self.kld,
            "top1": self.top1,
            "kld_mean": self.kld_mean,
            "top1_agreement": self.top1_agreement,
            "worst": self.worst(),
        }


def iter_logprobs(llm: Any, tokens: Sequence[int], start: int, rows: int = 64) -> Iterator[np.ndarray]:
    """Log-probabilities (float64) of the next token at positions start-1 .. len-2, the ones that
    predict tokens[start:], in chunks of `rows`. Evaluates in batches, asking llama.cpp for every
    position's logits.

    Llama.eval keeps only the last logits unless the model was created with logits_all, which
    reserves n_ctx x n_vocab floats; this reads each batch's rows and keeps none of them.
    """
    n_vocab = llm.n_vocab()
    first = max(start - 1, 0)
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    try:
        for i in range(0, len(tokens) - 1, llm.n_batch):
            batch = list(tokens[i : min(len(tokens) - 1, i + llm.n_batch)])
            llm._batch.set_batch(batch=batch, n_past=i, logits_all=True)
            llm._ctx.decode(llm._batch)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch), n_vocab))
            for lo in range(max(first - i, 0), len(batch), rows):
                yield _log_softmax(logits[lo : lo + rows].astype(np.float64))
    finally:
        llm.reset()


def score(ref: Iterable[np.ndarray], other: Iterable[np.ndarray]) -> Scores:
    """KL(ref || other) and top-1 agreement, chunk by chunk, for two aligned streams of log-probs."""
    out = Scores()
    for r, o in zip(ref, other, strict=False):  # the streams have equal length by construction
        part = compare(r, o)
        out.kld += part.kld
        out.top1 += part.top1
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def compare(ref: np.ndarray, other: np.ndarray) -> Scores:
    """KL(ref || other) and top-1 agreement per row of two log-probability matrices."""
    n = min(len(ref), len(other))
    ref, other = ref[:n], other[:n]
    kld = (np.exp(ref) * (ref - other)).sum(axis=1)
    top1 = ref.argmax(axis=1) == other.argmax(axis=1)
    return Scores([max(0.0, float(v)) for v in kld], [bool(v) for v in top1])

"""The numbers of llama-perplexity's KL-divergence mode, from logits rows, without a logits file.

llama-perplexity saves every position's full-vocabulary log-probs of the reference (16 bits each)
and reads them back for each candidate. Here the reference's rows are reduced to a compact form
per position: the top-K log-probs with their token ids, the probability mass outside them, the
reference's top-1 and the log-prob of the token that follows. A candidate's KL(ref || cand) is then
the exact sum over the reference's top K plus one "rest of the vocabulary" bucket,
P_rest * log(P_rest / Q_rest). By the log-sum inequality that bucket never exceeds the true tail
term, so the compact KLD is a lower bound of the exact one, and equal to it when K covers the
vocabulary (K >= n_vocab keeps everything). Top-1 agreement, perplexities and Δp use exact values.
Measured on the real Gemma 3 270M (262,144-token vocabulary; bench/eval.py prints it again), with
K = 256, ctx 256, 4 chunks of the default text against the exact full-vocabulary computation:
mean KLD error below 2e-5 nats relative 0.1% for Q8_0, Q3_K_M and Q2_K; memory 2 KiB a position
instead of 512 KiB (float16 full rows) or 1 MiB (float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOP_K = 256  # log-probs kept per reference position (see the module docstring for the error)
ROWS = 16  # rows of logits turned into log-probs at once, bounding the temporaries (16 x n_vocab)


@dataclass
class RefRows:
    """The reference at the scored positions of one chunk, in compact form."""

    ids: np.ndarray  # (P, K) int32: token ids of the top K (every id when K >= n_vocab)
    logp: np.ndarray  # (P, K) float32: their log-probs
    rest: np.ndarray  # (P,) float64: probability mass outside `ids`
    top1: np.ndarray  # (P,) int32: the reference's most probable token
    nll: np.ndarray  # (P,) float64: -log p(next token)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.ids, self.logp, self.rest, self.top1, self.nll)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays())

    def rows(self, lo: int, hi: int) -> RefRows:
        return RefRows(*(a[lo:hi] for a in self._arrays()))

    @staticmethod
    def concat(parts: list[RefRows]) -> RefRows:
        return RefRows(
            *(np.concatenate(arrays) for arrays in zip(*(p._arrays() for p in parts), strict=True))
        )


@dataclass
class Stats:
    """Per scored position: KL(ref || cand), same top-1, the candidate's and the reference's NLL."""

    kld: np.ndarray = field(default_factory=lambda: np.zeros(0))
    same_top: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    nll: np.ndarray = field(default_factory=lambda: np.zeros(0))
    nll_ref: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def extend(self, other: Stats) -> None:
        self.kld = np.concatenate([self.kld, other.kld])
        self.same_top = np.concatenate([self.same_top, other.same_top])
        self.nll = np.concatenate([self.nll, other.nll])
        self.nll_ref = np.concatenate([self.nll_ref, other.nll_ref])

    def summary(self) -> dict[str, float | int | None]:
        """The figures llama-perplexity prints: KLD mean/median/p99/max, same top p, PPLs, Δp."""
        n = len(self.kld)
        if n == 0:
            return {"tokens_scored": 0}
        p_diff = np.exp(-self.nll) - np.exp(-self.nll_ref)
        ppl, ppl_ref = float(np.exp(self.nll.mean())), float(np.exp(self.nll_ref.mean()))
        return {
            "kld_mean": float(self.kld.mean()),
            "kld_median": float(np.median(self.kld)),
            "kld_p99": float(np.percentile(self.kld, 99.0)),
            "kld_max": float(self.kld.max()),
            "top1_agreement": float(self.same_top.mean()),
            "ppl": ppl,
            "ppl_ref": ppl_ref,
            "ppl_ratio": ppl / ppl_ref,
            "p_diff_mean": float(p_diff.mean()),
            "p_diff_rms": float(np.sqrt((p_diff**2).mean())),
            "tokens_scored": n,
        }


def _log_z(block: np.ndarray) -> np.ndarray:
    """log(sum(exp(row))) per row, accumulated in float64."""
    m = block.max(axis=1, keepdims=True)
    s = np.exp(block - m).sum(axis=1, dtype=np.float64)
    return m[:, 0].astype(np.float64) + np.log(s)


def _logp(values: np.ndarray, log_z: np.ndarray) -> np.ndarray:
    """Log-probs rounded to float32 the same way for both sides, so a file against itself gives 0."""
    return (values.astype(np.float64) - log_z[:, None]).astype(np.float32)


def reference_rows(logits: np.ndarray, next_tokens: np.ndarray, k: int = TOP_K) -> RefRows:
    """Compact form of the reference's rows (P x n_vocab float32 logits) at P scored positions."""
    n_rows, n_vocab = logits.shape
    keep_all = k >= n_vocab
    width = n_vocab if keep_all else k
    out = RefRows(
        ids=np.empty((n_rows, width), np.int32),
        logp=np.empty((n_rows, width), np.float32),
        rest=np.empty(n_rows),
        top1=np.empty(n_rows, np.int32),
        nll=np.empty(n_rows),
    )
    for lo in range(0, n_rows, ROWS):
        block = logits[lo : lo + ROWS]
        rows = np.arange(len(block))
        log_z = _log_z(block)
        if keep_all:
            ids = np.broadcast_to(np.arange(n_vocab, dtype=np.int32), block.shape)
        else:
            ids = np.argpartition(block, n_vocab - k, axis=1)[:, n_vocab - k :].astype(np.int32)
        logp = _logp(np.take_along_axis(block, ids, axis=1), log_z)
        sl = slice(lo, lo + len(block))
        out.ids[sl], out.logp[sl] = ids, logp
        out.rest[sl] = 0.0 if keep_all else np.clip(1.0 - np.exp(logp.astype(np.float64)).sum(axis=1), 0, 1)
        out.top1[sl] = block.argmax(axis=1)
        tok = next_tokens[sl]
        out.nll[sl] = log_z - block[rows, tok].astype(np.float64)
    return out


def compare_rows(ref: RefRows, logits: np.ndarray, next_tokens: np.ndarray) -> Stats:
    """KL(ref || cand), same top-1 and NLLs at the positions `ref` holds, from the candidate's logits."""
    n_rows = logits.shape[0]
    kld, nll = np.empty(n_rows), np.empty(n_rows)
    same = np.empty(n_rows, dtype=bool)
    for lo in range(0, n_rows, ROWS):
        block = logits[lo : lo + ROWS]
        sl = slice(lo, lo + len(block))
        rows = np.arange(len(block))
        log_z = _log_z(block)
        lp = ref.logp[sl].astype(np.float64)
        lq = _logp(np.take_along_axis(block, ref.ids[sl], axis=1), log_z).astype(np.float64)
        top = (np.exp(lp) * (lp - lq)).sum(axis=1)
        p_rest = ref.rest[sl]
        q_rest = np.clip(1.0 - np.exp(lq).sum(axis=1), 1e-300, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            bucket = np.where(p_rest > 0, p_rest * (np.log(p_rest) - np.log(q_rest)), 0.0)
        kld[sl] = top + bucket
        same[sl] = block.argmax(axis=1) == ref.top1[sl]
        nll[sl] = log_z - block[rows, next_tokens[sl]].astype(np.float64)
    return Stats(kld, same, nll, ref.nll.copy())


def exact_rows(ref_logits: np.ndarray, logits: np.ndarray, next_tokens: np.ndarray) -> Stats:
    """The same figures from both sides' full rows in float64: the yardstick for the compact form."""
    lp = ref_logits.astype(np.float64)
    lp -= _log_z(ref_logits)[:, None]
    lq = logits.astype(np.float64)
    lq -= _log_z(logits)[:, None]
    rows = np.arange(len(lp))
    return Stats(
        (np.exp(lp) * (lp - lq)).sum(axis=1),
        lp.argmax(axis=1) == lq.argmax(axis=1),
        -lq[rows, next_tokens],
        -lp[rows, next_tokens],
    )

"""The numbers of llama-perplexity's KL-divergence mode, from logits rows, without a logits file.

llama-perplexity saves every scored position's full-vocabulary log-probs of the reference (16 bits
each, 512 KiB a position at a 262k vocabulary) to disk and reads them back for each candidate; its
KLD sums p*(log p - log q) only over the tokens whose reference log-prob is above -16. Here the
reference keeps, in memory, exactly those tokens per position (ids and float32 log-probs, at most
`keep` of them), its top-1 and the log-prob of the token that follows; a candidate's KLD is the same
sum. Top-1 agreement, perplexities and Δp use exact values. The -16 cutoff is llama-perplexity's
definition, not exact KL: measured on the real Gemma 3 270M (262,144 tokens) at ctx 256, 4 chunks
of the default text, against float64 KL over the whole vocabulary, the mean KLD differs by
+5.9e-6 for Q8_0 (0.008761, 0.07%), -3.1e-5 for Q3_K_M (0.6338, 0.005%) and -2.2e-4 for Q2_K
(1.1309, 0.02%); median, p99 and max by at most 5e-4; top-1, ppl ratio and Δp are equal. It kept
6,600 tokens a position on average: 52 KiB instead of 512 KiB (16-bit rows) or 1 MiB (float32).
On the tiny test models (259 tokens, about 170 kept) the difference is below 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CUTOFF = -16.0  # llama-perplexity sums KL terms only where the reference's log-prob is above this
MAX_KEEP = 1 << 18  # tokens kept per position at most (the budget in eval.py lowers it for long texts)
ROWS = 16  # rows of logits turned into log-probs at once, bounding the temporaries (16 x n_vocab)


@dataclass
class RefRows:
    """The reference at the scored positions of one chunk: per position, the tokens whose log-prob
    is above CUTOFF (at most `keep` of them, the most probable), ragged: position i owns
    ids/logp[start[i]:start[i+1]]."""

    start: np.ndarray  # (P+1,) int64
    ids: np.ndarray  # (N,) int32
    logp: np.ndarray  # (N,) float32
    top1: np.ndarray  # (P,) int32: the reference's most probable token
    nll: np.ndarray  # (P,) float64: -log p(next token)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.start, self.ids, self.logp, self.top1, self.nll))

    def rows(self, lo: int, hi: int) -> RefRows:
        a, b = self.start[lo], self.start[hi]
        return RefRows(
            self.start[lo : hi + 1] - a, self.ids[a:b], self.logp[a:b], self.top1[lo:hi], self.nll[lo:hi]
        )

    @staticmethod
    def concat(parts: list[RefRows]) -> RefRows:
        starts, base = [np.zeros(1, np.int64)], 0
        for p in parts:
            starts.append(p.start[1:] + base)
            base += int(p.start[-1])
        return RefRows(
            np.concatenate(starts),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.logp for p in parts]),
            np.concatenate([p.top1 for p in parts]),
            np.concatenate([p.nll for p in parts]),
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
        """The figures llama-perplexity prints: KLD mean/median/p99/max, same top p, PPLs, Δp, and the
        "±" it prints beside them (`*_se`, computed as in perplexity.cpp, see `uncertainties`)."""
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
            **self.uncertainties(),
        }

    def uncertainties(self) -> dict[str, float]:
        """The "±" llama-perplexity's KL-divergence mode prints (perplexity.cpp, kl_divergence): the
        standard error of each mean, sqrt((E[x²] - E[x]²) / (n - 1)), 0 when n <= 10; PPL's through
        exp (ppl · se of mean NLL); the PPL ratio's from ln(PPL(Q)/PPL(base)) with the covariance of the
        two NLLs (0 when n < 10); RMS Δp's as 0.5 / rms · se(Δp²); same-top's binomial,
        sqrt(p (1 - p) / (n - 1))."""
        n = len(self.kld)
        if n == 0:
            return {}

        se = mean_se
        nll, nll_ref = self.nll.astype(np.float64), self.nll_ref.astype(np.float64)
        se_nll, se_nll_ref = se(nll), se(nll_ref)
        cov = 0.0
        if n >= 10:
            cov = (float((nll * nll_ref).mean()) - float(nll.mean()) * float(nll_ref.mean())) / (n - 1)
        ln_ratio = float(nll.mean() - nll_ref.mean())
        ln_ratio_se = float(np.sqrt(max(se_nll**2 + se_nll_ref**2 - 2.0 * cov, 0.0)))
        p_diff = np.exp(-nll) - np.exp(-nll_ref)
        mse = float((p_diff**2).mean())
        rms = float(np.sqrt(mse))
        top = float(self.same_top.mean())
        return {
            "kld_mean_se": se(self.kld.astype(np.float64)),
            "ppl_se": float(np.exp(nll.mean())) * se_nll,
            "ppl_ref_se": float(np.exp(nll_ref.mean())) * se_nll_ref,
            "ln_ppl_ratio": ln_ratio,
            "ln_ppl_ratio_se": ln_ratio_se,
            "ppl_ratio_se": float(np.exp(ln_ratio)) * ln_ratio_se,
            "p_diff_mean_se": se(p_diff),
            "p_diff_rms_se": 0.5 / rms * se(p_diff**2) if rms > 0 else 0.0,
            "top1_agreement_se": float(np.sqrt(top * (1.0 - top) / (n - 1))) if n > 1 else 0.0,
        }


def mean_se(x: np.ndarray) -> float:
    """perplexity.cpp's mean_and_uncertainty: sqrt((E[x²] - E[x]²) / (n - 1)), 0 for n <= 10."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n <= 10:
        return 0.0
    mean = float(x.mean())
    var = float((x * x).mean()) - mean * mean
    return float(np.sqrt(var / (n - 1))) if var > 0 else 0.0


def _log_z(block: np.ndarray) -> np.ndarray:
    """log(sum(exp(row))) per row, accumulated in float64."""
    m = block.max(axis=1, keepdims=True)
    s = np.exp(block - m).sum(axis=1, dtype=np.float64)
    z: np.ndarray = m[:, 0].astype(np.float64) + np.log(s)
    return z


def _logp(values: np.ndarray, log_z: np.ndarray) -> np.ndarray:
    """Log-probs rounded to float32 the same way for both sides, so a file against itself gives 0."""
    lz = log_z[:, None] if values.ndim == 2 else log_z
    logp: np.ndarray = (values.astype(np.float64) - lz).astype(np.float32)
    return logp


def _kept(lp: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the log-probs above CUTOFF, at most `keep` per row (the most probable)."""
    mask = lp > CUTOFF
    for r in np.flatnonzero(mask.sum(axis=1) > keep):
        kth = np.partition(lp[r], lp.shape[1] - keep)[lp.shape[1] - keep]
        mask[r] &= lp[r] >= kth
    return mask


def reference_rows(logits: np.ndarray, next_tokens: np.ndarray, keep: int = MAX_KEEP) -> RefRows:
    """Compact form of the reference's rows (P x n_vocab float32 logits) at P scored positions."""
    starts, ids, logps, top1, nll = [np.zeros(1, np.int64)], [], [], [], []
    base = 0
    for lo in range(0, logits.shape[0], ROWS):
        block = logits[lo : lo + ROWS]
        log_z = _log_z(block)
        lp = _logp(block, log_z)
        rows, cols = np.nonzero(_kept(lp, keep))
        ids.append(cols.astype(np.int32))
        logps.append(lp[rows, cols])
        counts = np.bincount(rows, minlength=len(block))
        starts.append(base + np.cumsum(counts))
        base += int(counts.sum())
        top1.append(block.argmax(axis=1).astype(np.int32))
        nll.append(log_z - block[np.arange(len(block)), next_tokens[lo : lo + len(block)]].astype(np.float64))
    return RefRows(
        np.concatenate(starts),
        np.concatenate(ids),
        np.concatenate(logps),
        np.concatenate(top1),
        np.concatenate(nll),
    )


def compare_rows(ref: RefRows, logits: np.ndarray, next_tokens: np.ndarray) -> Stats:
    """KL(ref || cand), same top-1 and NLLs at the positions `ref` holds, from the candidate's logits."""
    n_rows = logits.shape[0]
    kld, nll = np.empty(n_rows), np.empty(n_rows)
    same = np.empty(n_rows, dtype=bool)
    for lo in range(0, n_rows, ROWS):
        block = logits[lo : lo + ROWS]
        hi = lo + len(block)
        log_z = _log_z(block)
        a, b = ref.start[lo], ref.start[hi]
        rows = np.repeat(np.arange(len(block)), np.diff(ref.start[lo : hi + 1]))
        lp = ref.logp[a:b].astype(np.float64)
        lq = _logp(block[rows, ref.ids[a:b]], log_z[rows]).astype(np.float64)
        kld[lo:hi] = np.bincount(rows, weights=np.exp(lp) * (lp - lq), minlength=len(block))
        same[lo:hi] = block.argmax(axis=1) == ref.top1[lo:hi]
        nll[lo:hi] = log_z - block[np.arange(len(block)), next_tokens[lo:hi]].astype(np.float64)
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

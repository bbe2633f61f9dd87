"""The evaluation text and its chunks, laid out as llama-perplexity lays them out.

The whole text is tokenized once with BOS; chunk i is tokens[i*ctx : (i+1)*ctx] with its first
token replaced by BOS (when the model adds one); in each chunk only the second half is scored: the
logits at positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1, so every scored token has at
least ctx/2 tokens of context.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import QuanttuiError
from ..safeopen import UnsafeFileError, read_bounded
from ..textsafe import clean_path

MIN_CTX = 16
DEFAULT_CTX = 512  # llama-perplexity's KLD tables are mostly at 512
MAX_CTX = 131072  # when the file does not say its trained context
MAX_TEXT_BYTES = 64 << 20


class QualityError(QuanttuiError):
    """An eval or bench request that cannot run: a bound refused, a text or model unusable."""


@dataclass(frozen=True)
class EvalText:
    """The text to score: its name (a path, or "default"), content and SHA-256."""

    name: str
    content: str
    sha256: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> EvalText:
        """The file at `path` (UTF-8, errors replaced), or the text that ships with quanttui."""
        if path is None:
            data = resources.files(__package__).joinpath("data/default.txt").read_bytes()
            name = "default"
        else:
            p = Path(path)
            try:
                data = read_bounded(p, MAX_TEXT_BYTES)  # a FIFO or /dev/zero is refused, not read
            except UnsafeFileError as e:
                raise QualityError(f"cannot read the text {clean_path(p)}: {e}") from None
            except OSError as e:
                raise QualityError(f"cannot read the text {clean_path(p)}: {e.strerror or e}") from None
            name = str(p)
        if not data.strip():
            raise QualityError(f"the text {clean_path(name)} is empty")
        return cls(name, data.decode("utf-8", errors="replace"), hashlib.sha256(data).hexdigest())


def check_ctx(ctx: int, n_ctx_train: int | None) -> None:
    """Refuse a context the model was not trained for, or too short to score anything."""
    if ctx < MIN_CTX:
        raise QualityError(f"--ctx {ctx} is too small: at least {MIN_CTX} tokens, half of them scored")
    if n_ctx_train and ctx > n_ctx_train:
        raise QualityError(f"--ctx {ctx} is more than the model's trained context ({n_ctx_train})")
    if not n_ctx_train and ctx > MAX_CTX:
        raise QualityError(f"--ctx {ctx}: the model does not say its trained context; at most {MAX_CTX}")


def default_ctx(n_ctx_train: int | None) -> int:
    return min(DEFAULT_CTX, n_ctx_train) if n_ctx_train else DEFAULT_CTX


def check_chunks(chunks: int | None, n_tokens: int, ctx: int, max_positions: int | None = None) -> int:
    """How many chunks to score: `chunks`, or all the text holds (up to `max_positions` scored
    tokens, what the reference's rows may hold in memory); refused beyond either."""
    fits = n_tokens // ctx
    if fits < 1:
        raise QualityError(f"the text is {n_tokens} tokens, shorter than one chunk of --ctx {ctx}")
    per_chunk = scored(ctx)[1] - scored(ctx)[0]
    most = max(1, max_positions // per_chunk) if max_positions else fits
    if chunks is None:
        return min(fits, most)
    if chunks < 1:
        raise QualityError(f"--chunks {chunks}: at least 1")
    if chunks > fits:
        raise QualityError(
            f"--chunks {chunks}: the text holds {fits} chunks of {ctx} tokens ({n_tokens} tokens)"
        )
    if chunks > most:
        raise QualityError(
            f"--chunks {chunks}: at most {most} at --ctx {ctx} (the reference is kept in memory)"
        )
    return chunks


def chunk(tokens: list[int], i: int, ctx: int, bos: int | None) -> list[int]:
    """Chunk i of the text, its first token replaced by BOS when the model adds one."""
    out = list(tokens[i * ctx : (i + 1) * ctx])
    if bos is not None:
        out[0] = bos
    return out


def scored(ctx: int) -> tuple[int, int]:
    """(first, last + 1) of the positions whose logits are scored in a chunk of `ctx` tokens."""
    return ctx // 2, ctx - 1

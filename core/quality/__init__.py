"""What a lower quant loses and how fast each runs: eval (KL divergence against a reference, the
way llama-perplexity computes it), bench (llama-bench's pp/tg) and advise (which quant to run here)."""

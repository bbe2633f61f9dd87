"""quanttui's command line: one thin module per topic over core; no Textual and no llama_cpp at import."""

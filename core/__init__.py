"""quanttui's headless engine: everything the screens show, without importing Textual."""

"""`python -m quanttui`: the `quanttui` command."""

from __future__ import annotations

import sys

from quanttui.cli.main import main

sys.exit(main())

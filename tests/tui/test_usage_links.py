"""The Disk usage screen says how many files in the roots are links to data outside them, counts
them as 0 bytes and shows each with what it points to and that size in brackets."""

from __future__ import annotations

from quanttui.core import format as fmt
from quanttui.core.fit import hardware
from quanttui.core.library import Root
from quanttui.tui.app import create_app
from quanttui.tui.screens.usage import UsageScreen
from tests.core.test_usage_links import _layout
from tests.tui.pilot_help import until
from tests.tui.test_ab_screen import _until
from tests.tui.test_library_screen import _loaded, rendered


async def test_disk_usage_shows_links_out_of_the_roots_apart(tiny, tmp_path):
    lib, real, link, victim = _layout(tiny, tmp_path)
    app = create_app([Root(lib, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, UsageScreen))
        screen = app.screen
        await _until(pilot, lambda: "duplicate" in rendered(screen.query_one("#dupes")))
        text = rendered(screen.query_one("#usage"))
        assert f"total {fmt.size(real.stat().st_size)} in 2 files" in text
        assert "1 link to a file outside the roots, not counted" in text
        assert f"[{fmt.size(victim.stat().st_size)}]" in text and "victim.gguf" in text
        assert fmt.size(real.stat().st_size + victim.stat().st_size) not in text

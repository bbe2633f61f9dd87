"""The download queue (issue 18): the app owns a DownloadsState and runs one job at a time, each in its own
worker whose cancelled_event stops the download; the Downloads screen follows the state's signal and
changes nothing itself."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from quanttui.core.errors import QuanttuiError
from quanttui.core.fit import hardware
from quanttui.core.hub import RemoteFile, Variant
from quanttui.core.library import Root
from quanttui.tui import downloads as downloads_mod
from quanttui.tui.app import create_app
from quanttui.tui.downloads import DownloadJob
from quanttui.tui.screens.downloads import DownloadsScreen
from tests.tui.pilot_help import refused_off_thread, until


class FakeHub:
    """`pull` for the queue: each call reports half its bytes, then waits until the test lets it finish
    (or fail), or until it is cancelled, as the real pull does."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.fail: set[str] = set()
        self.cancelled: list[str] = []

    def pull(self, repo, files, revision="main", *, progress=None, cancel=None, to="library", root=None):
        self.started.append(repo)
        total = sum(f.size for f in files)
        if progress is not None:
            progress(total // 2, total, files[0].name)
        go = self.release.setdefault(repo, threading.Event())
        while not go.wait(0.02):
            if cancel is not None and cancel.is_set():
                self.cancelled.append(repo)
                raise QuanttuiError("download cancelled")
        if repo in self.fail:
            raise QuanttuiError(f"{repo}: refused")
        return [Path("/nowhere") / files[0].name]


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    hub = FakeHub()
    monkeypatch.setattr(downloads_mod, "pull", hub.pull)
    return hub


def _variant(name: str) -> Variant:
    return Variant("Q8_0", [RemoteFile(name, 1000, None)])


def _rows(screen: DownloadsScreen) -> dict[str, str]:
    table = screen.query_one("#jobs")
    return {str(k.value): str(table.get_cell(k, "status")) for k in table.rows}


@pytest.mark.slow
async def test_the_queue_runs_one_job_at_a_time_and_the_screen_follows(fake_hub, tmp_path):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.3)
        state = app.downloads
        heard: list[tuple[int, str]] = []
        app.push_screen(DownloadsScreen())
        await until(pilot, lambda: isinstance(app.screen, DownloadsScreen) and app.screen.is_mounted)
        screen = app.screen
        state.changed.subscribe(screen, lambda job: heard.append((job.id, job.status)))
        first = app.enqueue_download("a/one", _variant("one-Q8_0.gguf"))
        second = app.enqueue_download("a/two", _variant("two-Q8_0.gguf"))
        third = app.enqueue_download("a/three", _variant("three-Q8_0.gguf"))
        assert [j.status for j in state.jobs] == ["downloading", "queued", "queued"]
        await until(pilot, lambda: first.done == 500)
        await until(pilot, lambda: _rows(screen) == {
            str(first.id): "downloading", str(second.id): "queued", str(third.id): "queued"
        })  # fmt: skip
        assert fake_hub.started == ["a/one"]  # one at a time

        # cancel a queued job from the screen: the app takes it out of the queue
        screen.query_one("#jobs").move_cursor(row=2)
        await pilot.press("c")
        await until(pilot, lambda: _rows(screen)[str(third.id)] == "cancelled")
        assert third.status == "cancelled" and fake_hub.started == ["a/one"]

        # cancel the running one: its worker's cancelled_event stops the pull, the next job starts
        screen.query_one("#jobs").move_cursor(row=0)
        await pilot.press("c")
        await until(pilot, lambda: first.status == "cancelled" and second.status == "downloading")
        assert fake_hub.cancelled == ["a/one"] and fake_hub.started == ["a/one", "a/two"]
        assert first.error == "download cancelled"

        # the second fails: one line, and the queue is empty
        fake_hub.fail.add("a/two")
        fake_hub.release["a/two"].set()
        await until(pilot, lambda: second.status == "failed")
        assert second.error == "a/two: refused" and state.running() is None and state.next_queued() is None
        await until(pilot, lambda: _rows(screen)[str(second.id)] == "failed")

        # resume the cancelled first one from the screen: it runs again and finishes, and the app rescans
        fake_hub.release["a/one"].set()
        screen.query_one("#jobs").move_cursor(row=0)
        await pilot.press("r")
        await until(pilot, lambda: first.status == "done")
        assert first.done == first.total == 1000 and first.error is None
        assert fake_hub.started == ["a/one", "a/two", "a/one"]
        await until(pilot, lambda: _rows(screen)[str(first.id)] == "done")
        await until(pilot, lambda: "1 active" not in str(screen.query_one("#overall-text").render()))
        statuses = [s for i, s in heard if i == first.id]
        assert statuses[0] == "downloading" and statuses[-1] == "done" and "cancelled" in statuses


async def test_the_downloads_state_changes_only_on_the_ui_thread(tmp_path):
    app = create_app([Root(tmp_path, "folder", False)], hardware("0", "32GiB"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.2)
        state = app.downloads
        job = DownloadJob("a/x", _variant("x.gguf"), status="failed")
        state.add(job)
        errors = refused_off_thread(
            [
                lambda: state.add(DownloadJob("a/y", _variant("y.gguf"))),
                lambda: state.requeue(job),
                lambda: state.start(job),
                lambda: state.report(job.id, 10, "downloading", None),
                lambda: state.cancel_queued(job),
            ]
        )
        assert errors == ["downloads state changed off the UI thread"] * 5
        assert state.jobs == [job] and job.status == "failed" and job.done == 0
        state.requeue(job)
        assert job.status == "queued" and job.error is None
        state.cancel_queued(job)
        assert job.status == "cancelled"
        assert state.report(12345, 1, "done", None) is None  # a job it never held

"""The command palette (ctrl+p): one provider that offers, on whatever screen it opens over, every
command the app and that screen give (App.get_system_commands) and every key of the screen (its
bindings, the focused widget's and the app's), each shown with its key. A command is found by its
title or by the words of its help (so "eval" finds the Library's Quality view, which evals)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.screen import Screen

GENERIC = {"Focus Next", "Focus Previous", "Copy selected text", "Command palette", "Maximize", "Minimize"}
"""Textual's own keys, left out of the palette (they are on the help screen)."""


@dataclass
class Entry:
    title: str
    help: str
    run: Callable[[], Any]
    key: str = ""  # as the footer writes it ("^k"), empty where no key runs it


def action_of(callback: Callable[..., Any]) -> str | None:
    """The binding action a command's callback runs: `self.action_quality` is "quality", and
    `partial(self.action_delete, False)` is "delete(False)", as bindings write them."""
    args: tuple[Any, ...] = ()
    if isinstance(callback, functools.partial):
        args = callback.args
        callback = callback.func
    name = getattr(callback, "__name__", "")
    if not name.startswith("action_"):
        return None
    action = name.removeprefix("action_")
    return f"{action}({', '.join(repr(a) for a in args)})" if args else action


def bare(action: str) -> str:
    """A binding's action without its namespace ("app.quit" is "quit")."""
    head, _, rest = action.partition("(")
    return head.rsplit(".", 1)[-1] + (f"({rest}" if rest else "")


def entries(screen: Screen[Any]) -> list[Entry]:
    """What the palette offers over `screen`: the app's and the screen's commands, each with the key
    whose binding runs the same action, then every key no command covers, titled by its description."""
    app = screen.app
    keys: dict[str, tuple[str, Binding, Any]] = {}  # action -> (key shown, binding, its namespace)
    for namespace, binding, enabled, _tooltip in screen.active_bindings.values():
        # The screen's and the app's keys; a focused widget's own (cursor moves) stay on Help.
        if binding.description and enabled and namespace in (screen, app):
            keys.setdefault(bare(binding.action), (app.get_key_display(binding), binding, namespace))
    out: list[Entry] = []
    covered: set[str] = set()
    for command in app.get_system_commands(screen):
        action = action_of(command.callback)
        key = ""
        if action is not None and action in keys:
            key = keys[action][0]
            covered.add(action)
        out.append(Entry(command.title, command.help, command.callback, key))
    for action, (key, binding, namespace) in keys.items():
        if action in covered or binding.description in GENERIC or action == "command_palette":
            continue
        run = functools.partial(run_binding, namespace, binding)
        out.append(Entry(binding.description, f"key {key}", run, key))
    return out


async def run_binding(namespace: Any, binding: Binding) -> None:
    """Run a key's action as pressing it would, in the namespace that binds it."""
    await namespace.app.run_action(binding.action, namespace)


def shown(title: Content | str, key: str) -> Content:
    """A palette line: the title, then its key, dimmed."""
    line = title if isinstance(title, Content) else Content(title)
    return line + Content.styled(f"  {key}", "$text-muted") if key else line


def with_key(help: str, key: str) -> str:
    return f"{key}: {help}" if key else help


class KeyedCommands(Provider):
    """Every command and key of the screen the palette opens over, each with its key."""

    def _entries(self) -> Iterator[Entry]:
        yield from entries(self.screen)

    async def discover(self) -> Hits:
        for e in sorted(self._entries(), key=lambda e: e.title):
            yield DiscoveryHit(shown(e.title, e.key), e.run, text=e.title, help=with_key(e.help, e.key))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        words = query.lower().split()
        for e in self._entries():
            score = matcher.match(e.title)
            if score > 0:
                title: Content | str = matcher.highlight(e.title)
            elif words and all(w in f"{e.title} {e.help} {e.key}".lower() for w in words):
                score, title = 0.2, e.title  # found by its help's words: after the titles that match
            else:
                continue
            yield Hit(score, shown(title, e.key), e.run, text=e.title, help=with_key(e.help, e.key))


def commands_for(screen: Screen[Any]) -> list[SystemCommand]:
    """The palette's entries over `screen` as (title, help) commands, for tests and Help."""
    return [SystemCommand(e.title, with_key(e.help, e.key), e.run) for e in entries(screen)]

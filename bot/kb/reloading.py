"""The process's knowledge base, reloaded when an article file is added, edited or removed:
a designer's change is live within a second, with no retraining and no restart."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.kb.base import KnowledgeBase
from bot.kb.parsing import KBError
from bot.kb.semantic import default_model
from bot.settings import Settings

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0


class ReloadingKnowledgeBase:
    """Holds the last good KnowledgeBase of a folder and reloads it when the folder's article
    files change (checked at most once per `interval_s`). A reload that fails keeps serving the
    last good one and logs every problem; a first load that fails raises KBError."""

    def __init__(
        self,
        folder: str | Path,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
        load: Callable[[Path], KnowledgeBase] = KnowledgeBase.load,
    ) -> None:
        self.folder = Path(folder)
        self._load = load
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._current: KnowledgeBase | None = None
        self._signature: tuple | None = None
        self._failed_signature: tuple | None = None
        self._checked_at: float | None = None
        self.last_error: KBError | None = None

    def get(self) -> KnowledgeBase:
        """The knowledge base as the files are now (cheap: a folder scan at most once a second)."""
        now = self._monotonic()
        current = self._current
        if current is not None and self._checked_at is not None and now - self._checked_at < self.interval_s:
            return current
        with self._lock:
            if (
                self._current is not None
                and self._checked_at is not None
                and now - self._checked_at < self.interval_s
            ):
                return self._current
            self._checked_at = now
            signature = folder_signature(self.folder)
            if self._current is not None and signature == self._signature:
                return self._current
            if self._current is not None and signature == self._failed_signature:
                return self._current  # the same broken files: already logged
            try:
                loaded = self._load(self.folder)
            except KBError as error:
                self.last_error = error
                self._failed_signature = signature
                if self._current is None:
                    raise
                log.error("knowledge base not reloaded, still serving the last good one: %s", error)
                return self._current
            if self._current is not None:
                log.info("knowledge base reloaded: %d articles from %s", len(loaded.articles), self.folder)
            self._current, self._signature, self.last_error = loaded, signature, None
            return loaded


def folder_signature(folder: Path) -> tuple:
    """What identifies the folder's article files as they are: names, sizes, modification times."""
    found = []
    for directory, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".md"):
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                found.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


_instances: dict[Path, ReloadingKnowledgeBase] = {}
_instances_lock = threading.Lock()


def knowledge_base(folder: str | Path | None = None) -> KnowledgeBase:
    """The process-wide knowledge base of `folder` (default: settings' kb_dir, env KB_DIR),
    reloaded when its files change. Cheap enough to call on every message."""
    settings = _settings()
    key = Path(folder or settings.kb_dir).resolve()
    instance = _instances.get(key)
    if instance is None:
        with _instances_lock:
            if key not in _instances:
                semantic, engine = settings.kb_semantic, settings.kb_sentence_engine

                def load(path: Path) -> KnowledgeBase:
                    return KnowledgeBase.load(path, model=default_model(engine) if semantic else None)

                _instances[key] = ReloadingKnowledgeBase(key, load=load)
            instance = _instances[key]
    return instance.get()


_settings_read: Settings | None = None


def _settings() -> Settings:
    global _settings_read
    if _settings_read is None:
        _settings_read = Settings.from_env()
    return _settings_read

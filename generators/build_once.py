"""Build a model folder exactly once, safely under threads and processes.

The build goes to a private temporary folder beside `root`; a marker file holding `version` is
written last; the folder is moved into place with one `os.replace`. A `root` without the current
marker (half-written, older format) is moved aside and rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_LOCK = threading.Lock()  # threads of one process share torch's RNG: build one model at a time


def is_complete(root: Path, marker: str, version: str) -> bool:
    try:
        return (root / marker).read_text(encoding="utf-8").strip() == version
    except OSError:
        return False


def build_once(root: Path, build: Callable[[Path], None], *, marker: str, version: str) -> None:
    """Run `build(staging_folder)` and install the result at `root`, unless `root` is already complete."""
    if is_complete(root, marker, version):
        return
    with _LOCK:
        if not is_complete(root, marker, version):
            _build_into(root, build, marker, version)


def _build_into(root: Path, build: Callable[[Path], None], marker: str, version: str) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700; the finished root should read like any folder
        build(staging)
        (staging / marker).write_text(version + "\n", encoding="utf-8")
        if root.exists() and not is_complete(root, marker, version):
            # A broken or outdated build: move it aside first (rename is atomic), then delete it.
            trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.stale-", dir=root.parent))
            with contextlib.suppress(OSError):  # someone else moved it already
                os.replace(root, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(staging, root)  # fails if another process installed a non-empty root first
        except OSError:
            if not is_complete(root, marker, version):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

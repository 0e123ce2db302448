"""Run-time switches shared by the package, the notebooks and the tests.

* ``MMSTN_SMOKE=1`` shrinks every expensive loop so that CI can execute the notebooks in seconds;
  a reader who leaves it unset gets the full run.
* ``MMSTN_DATA`` points at the folder that holds user-supplied, licence-gated files (BFM, 3DDFA, ...);
  the default is ``data/`` in the repository.
* ``MMSTN_SHARED_DATA`` points at the reference data used by tests (default ``../shared/data``).
* ``MMSTN_FIGURES`` is where notebooks write their figures (default ``figures/``).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "REPO_ROOT",
    "as_numpy",
    "atomic_write",
    "data_dir",
    "device",
    "display_path",
    "figures_dir",
    "is_smoke",
    "one_thread",
    "seed_everything",
    "shared_data_dir",
    "smoke_or",
    "temporary_name",
]

#: Root of the source checkout (the folder that holds ``mmstn/``).
REPO_ROOT: Path = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}


def temporary_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process and call: ``<name>.<pid>.<random>.tmp``."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", *, fsync: bool = False, **open_kwargs: Any) -> Iterator[IO]:
    """Write ``path`` all or nothing: yield a file open on a temporary name beside it, rename it over ``path``
    when the block ends, and remove it if the block raises (``path`` is then the old file, or absent).

    Args:
        path: the file to write; its folder must exist.
        mode: ``"wb"`` or ``"w"``; ``open_kwargs`` go to :func:`open` (e.g. ``newline=""`` for CSV).
        fsync: flush the data to disk before the rename (for files a crash must not lose, e.g. checkpoints).
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def as_numpy(x) -> np.ndarray:
    """A tensor (detached, moved to the CPU) or any array-like as a NumPy array; no copy where none is needed."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def is_smoke() -> bool:
    """True when ``MMSTN_SMOKE`` asks for the shrunken CI run."""
    return os.environ.get("MMSTN_SMOKE", "").strip().lower() in _TRUE


def smoke_or(smoke_value, full_value):
    """Return ``smoke_value`` in smoke mode and ``full_value`` otherwise.

    Example: ``n_iter = smoke_or(20, 500)``.
    """
    return smoke_value if is_smoke() else full_value


def device(prefer: str | None = None) -> torch.device:
    """The compute device: ``prefer`` if given, else CUDA when present, else CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that notebook cells are reproducible."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - legacy global state is what user code may still use
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def data_dir() -> Path:
    """Folder of user-supplied model and dataset files (``MMSTN_DATA``, default ``<repo>/data``)."""
    return Path(os.environ.get("MMSTN_DATA", REPO_ROOT / "data")).expanduser()


def shared_data_dir() -> Path:
    """Reference data for tests and local runs (``MMSTN_SHARED_DATA``, default ``<repo>/../shared/data``)."""
    return Path(os.environ.get("MMSTN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).expanduser()


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a reader should see it: relative to the checkout when inside it, else with ``~``.

    Notebook outputs are committed, so they must not show the folders of the machine that executed them.
    """
    p = Path(path).expanduser().resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        pass
    try:
        return "~/" + p.relative_to(Path.home()).as_posix()
    except ValueError:
        return p.name if p.is_absolute() else p.as_posix()


def figures_dir(create: bool = True) -> Path:
    """Where notebooks save their figures (``MMSTN_FIGURES``, default ``<repo>/figures``)."""
    path = Path(os.environ.get("MMSTN_FIGURES", REPO_ROOT / "figures")).expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block (or decorated function), then restore the thread count.

    The fits and renderings here work on a few thousand grid cells at a time: intra-op parallelism costs
    more than it saves, and on a busy machine a thread that waits for a descheduled partner makes every small
    operation ten to thirty times slower. (The setting is process-wide while the block runs.)
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

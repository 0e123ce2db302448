"""Fixtures and session rules shared by the whole test suite.

``shared_data``
    The reference-data folder (``mmstn.runtime.shared_data_dir()``: ``$MMSTN_SHARED_DATA``, default
    ``../shared/data`` beside the checkout). Tests that take it skip with the reason when the folder is absent,
    and are marked ``shared_data`` automatically, so ``-m "not shared_data"`` deselects them.

Runs that test nothing must not pass
    * Nothing collected or everything deselected: pytest exits 5 (``NO_TESTS_COLLECTED``). We keep that, and
      ``pytest_sessionfinish`` below turns a 0 back into 5 should any plugin or option have suppressed it.
    * The command line names ``notebooks/`` (or a notebook), but not one notebook cell was collected: the
      nbval options (``--nbval-lax ...``) were dropped, or there are no ``notebooks/NN_*.ipynb``. The session
      stops with a usage error (exit 4) before running anything, instead of passing on the unit tests alone.
      This is the check that keeps ``make test`` honest if someone edits its pytest line.
    * Every collected test skipped (e.g. ``pytest tests/ui`` without Chromium): *not* an error. Skips carry
      their reason in the ``-ra`` summary, a warning line says that nothing ran, and the one skip CI must not
      accept (the browser tests) is turned into a failure by ``MMSTN_REQUIRE_BROWSER=1`` in ``.ci/run``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference-data folder, or a skip naming the folder and ``MMSTN_SHARED_DATA``."""
    from mmstn.runtime import shared_data_dir

    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(
            f"shared reference data not found at {path}: set MMSTN_SHARED_DATA to the folder that holds it "
            "(default: ../shared/data next to the repository)"
        )
    return path


def _names_notebooks(config: pytest.Config) -> bool:
    """True when the command line itself points at notebooks/ or at a notebook file."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False  # plain `pytest` (testpaths): a quick unit-test run is allowed to leave notebooks out
    notebooks = NOTEBOOKS_DIR.resolve()
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        path = path.resolve()
        if path.suffix == ".ipynb" or path == notebooks or notebooks in path.parents:
            return True
    return False


def _nbval_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("nbval", default=False) or config.getoption("nbval_lax", default=False))


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection: a deliberate `-k` must not trip the check
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)

    if _names_notebooks(config) and not any(item.path.suffix == ".ipynb" for item in items):
        if _nbval_enabled(config):
            why = f"no notebooks/NN_*.ipynb were found in {NOTEBOOKS_DIR}"
        else:
            why = ("the nbval options are missing: add --nbval-lax --nbval-current-env "
                   "--nbval-sanitize-with notebooks/nbval_sanitize.cfg (see the Makefile's test target)")
        raise pytest.UsageError(f"the command line names the notebooks but no notebook cell was collected: {why}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    if session.testscollected == 0 and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = terminalreporter.stats
    ran = sum(len(stats.get(key, [])) for key in ("passed", "failed", "error", "xfailed", "xpassed"))
    skipped = len(stats.get("skipped", []))
    if ran == 0 and skipped:
        message = f"nothing ran: all {skipped} selected tests were skipped (reasons in the summary)"
        terminalreporter.write_sep("!", message, yellow=True)

"""Fixtures for the real-browser widget tests: JupyterLab driven by Debian's Chromium through Playwright.

* ``chromium_executable`` (session): ``/usr/bin/chromium`` and the ``playwright`` package, or a skip with the
  reason; with ``MMSTN_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) a missing browser is a failure instead.
* ``jupyter_lab`` (session): copies ``notebooks/`` into a temporary folder (running cells marks notebooks dirty,
  the checkout must stay clean), gives JupyterLab its own config, runtime, settings, workspaces and IPython
  folders, writes a galata-style ``jupyter_server_config.py`` (no token, no XSRF check,
  ``expose_app_in_browser`` so tests can call ``window.jupyterapp.commands``), starts ``jupyter lab`` on a free
  127.0.0.1 port in its own process group, waits for ``/api/status``, and at teardown shuts the kernels down and
  stops the process group.
* ``browser`` (session): Playwright's sync API launching ``/usr/bin/chromium`` (never ``playwright install``).
* ``lab_page`` (function): a fresh browser context and page (with its console errors); afterwards the kernels it
  started are shut down.

Artefacts (screenshots, the server log, timings) go to ``build/ui-screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
ARTIFACTS_DIR = REPO_ROOT / "build" / "ui-screenshots"

#: Debian's Chromium (``apt-get install chromium``); MMSTN_CHROMIUM may point elsewhere.
CHROMIUM = Path(os.environ.get("MMSTN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

SERVER_START_TIMEOUT_S = 90.0
SERVER_STOP_TIMEOUT_S = 15.0

# JupyterLab user settings written into the private JUPYTERLAB_SETTINGS_DIR.
LAB_SETTINGS = {
    # The "get notified about official Jupyter news?" toast otherwise covers part of the notebook.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Attach every cell to the DOM: with windowing, off-screen outputs (and their widgets) may be missing.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # The server's root is a throwaway copy; no need to write it back while the test runs.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

SERVER_CONFIG = """\
# Written by tests/ui/conftest.py for one test session. No authentication: never use it for real work.
try:
    from jupyterlab.galata import configure_jupyter_server
except ImportError:  # a JupyterLab without the galata helper: the explicit settings below suffice
    configure_jupyter_server = None

if configure_jupyter_server is not None:
    configure_jupyter_server(c)  # noqa: F821  (c is the config object injected by traitlets)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = {port}
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.ServerApp.root_dir = {root_dir!r}
c.ServerApp.terminals_enabled = False
c.IdentityProvider.token = ""
c.ServerApp.disable_check_xsrf = True
c.LabApp.expose_app_in_browser = True
c.LabApp.workspaces_dir = {workspaces_dir!r}
"""

_TRUE = {"1", "true", "yes", "on"}


def browser_required() -> bool:
    """True when the environment (``MMSTN_REQUIRE_BROWSER``, set by ``.ci/run``) forbids skipping."""
    return os.environ.get("MMSTN_REQUIRE_BROWSER", "").strip().lower() in _TRUE


def _unavailable(reason: str):
    if browser_required():
        pytest.fail(
            f"{reason}, but MMSTN_REQUIRE_BROWSER=1 requires the browser tests to run "
            "(install Chromium with `make browser` or `apt-get install -y chromium`)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (set MMSTN_REQUIRE_BROWSER=1 to make this a failure)")


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[ui]')")
    return CHROMIUM


@dataclass
class LabServer:
    """A running JupyterLab server started by the ``jupyter_lab`` fixture."""

    url: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen
    start_seconds: float
    timings: list[dict] = field(default_factory=list)

    def request(self, method: str, path: str, timeout: float = 10.0):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Delete every session and kernel (frees the 2 CPU cores for the next notebook)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            for session in self.request("GET", "/api/sessions") or []:
                self.request("DELETE", f"/api/sessions/{session['id']}", timeout=30)
            for kernel in self.request("GET", "/api/kernels") or []:
                self.request("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the server then shuts its kernels down), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)


def _wait_for_status(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Poll ``/api/status`` until it answers 200 (True) or the process exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url + "/api/status", timeout=2) as resp:
                if resp.status == 200:
                    return True
        time.sleep(0.25)
    raise TimeoutError(f"JupyterLab did not answer {url}/api/status within {timeout:.0f} s")


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory, chromium_executable):
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "root"
    shutil.copytree(NOTEBOOKS_DIR, root_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    dirs = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython", "tmp")}
    for path in dirs.values():
        path.mkdir()
    for relpath, settings in LAB_SETTINGS.items():
        target = dirs["settings"] / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings, indent=2))
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS_DIR / "jupyter-server.log"

    env = os.environ.copy()
    # ipykernel picks the inline backend only when MPLBACKEND is unset; with Agg nothing would be drawn.
    env.pop("MPLBACKEND", None)
    env.pop("JUPYTER_TOKEN", None)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),  # kernelspecs and lab extensions still come from sys.prefix
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        TMPDIR=str(dirs["tmp"]),  # galata's helper calls mkdtemp() for folders it never removes
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        MMSTN_FIGURES=str(base / "figures"),
    )
    env.setdefault("MMSTN_SMOKE", "1")
    env.setdefault("TQDM_DISABLE", "1")

    server = None
    failures = []
    for _attempt in range(3):  # a free port can be taken between probing and binding; try another one
        port = _free_port()
        (dirs["config"] / "jupyter_server_config.py").write_text(
            SERVER_CONFIG.format(port=port, root_dir=str(root_dir), workspaces_dir=str(dirs["workspaces"]))
        )
        cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
               f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1"]
        start = time.monotonic()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, cwd=root_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole at teardown
            )
        url = f"http://127.0.0.1:{port}"
        try:
            ready = _wait_for_status(url, process, SERVER_START_TIMEOUT_S)
        except TimeoutError as exc:
            _stop_group(process)
            pytest.fail(f"{exc}\n--- server log ({log_path}) ---\n{log_path.read_text(errors='replace')}")
        if ready:
            server = LabServer(url, root_dir, log_path, process, time.monotonic() - start)
            break
        failures.append(log_path.read_text(errors="replace"))
    if server is None:
        pytest.fail("JupyterLab exited before answering /api/status; last log:\n" + failures[-1], pytrace=False)

    try:
        yield server
    finally:
        server.shutdown_kernels()
        _stop_group(server.process)
        if server.timings:
            (ARTIFACTS_DIR / "timings.json").write_text(
                json.dumps({"server_start_s": round(server.start_seconds, 2), "notebooks": server.timings},
                           indent=2)
            )


@pytest.fixture(scope="session")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(chromium_executable), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class LabPage:
    """A Playwright page in its own browser context, with the browser console's errors and warnings."""

    page: object
    console: list[str] = field(default_factory=list)


@pytest.fixture
def lab_page(browser, jupyter_lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    lab = LabPage(context.new_page())

    def on_console(msg):
        if msg.type in ("error", "warning"):
            lab.console.append(f"{msg.type}: {msg.text}")

    lab.page.on("console", on_console)
    lab.page.on("pageerror", lambda exc: lab.console.append(f"pageerror: {exc}"))
    try:
        yield lab
    finally:
        context.close()
        jupyter_lab.shutdown_kernels()


def pytest_terminal_summary(terminalreporter):
    timings_file = ARTIFACTS_DIR / "timings.json"
    lines = [rep for rep in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             if any(name == "ui_timing" for name, _ in rep.user_properties)]
    if not lines:
        return
    terminalreporter.section("browser widget tests: timings")
    for rep in lines:
        for name, value in rep.user_properties:
            if name == "ui_timing":
                terminalreporter.write_line(f"{rep.nodeid}: {value}")
    if timings_file.exists():
        terminalreporter.write_line(f"(details: {timings_file}; screenshots in {ARTIFACTS_DIR})")

"""Real-browser tests of the widget-driven notebooks: JupyterLab + Chromium through Playwright.

For each notebook in ``WIDGET_NOTEBOOKS`` the test opens it in JupyterLab (one server per session on a temporary
copy of ``notebooks/``; a fresh workspace, page and kernel per notebook), clears the stored outputs and runs all
cells through the app's command registry, waits for the first ``.widget-slider`` and an image (a figure in a
widget ``Output`` or an ``ipywidgets.Image``), moves the slider with the keyboard as a reader would, and checks
that the slider's ``aria-valuenow`` and the image's ``src`` both changed: the whole path frontend -> comm ->
kernel observer -> widget -> frontend. A screenshot goes to ``build/ui-screenshots/<notebook>.png``.

To add a notebook: append its file name (as in ``notebooks/``) to ``WIDGET_NOTEBOOKS``. Its first slider must
redraw an image; ``test_widget_notebooks_are_listed`` fails for a notebook whose saved outputs show widgets but
that is missing from the list.

``MMSTN_UI_NOTEBOOKS`` (entries separated by ``:`` or ``,``; bare names are looked up in ``notebooks/``) replaces
the list for one run, e.g. to prove the machinery on a scratch notebook outside the repository:
``MMSTN_UI_NOTEBOOKS=/tmp/proof/00_slider.ipynb pytest tests/ui``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
ARTIFACTS_DIR = REPO_ROOT / "build" / "ui-screenshots"  # same folder as tests/ui/conftest.py uses

#: Notebooks (file names in notebooks/) whose first slider redraws a figure. The lead extends this list.
WIDGET_NOTEBOOKS = [
    "00_quickstart.ipynb",
    "01_morphable_model.ipynb",
    "02_tutte_embedding.ipynb",
    "04_sampler_and_visibility.ipynb",
    "05_losses_and_fitting.ipynb",
    "06_training.ipynb",
    "07_averaging.ipynb",
    "08_resampling_vs_reconstruction.ipynb",
]

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

KERNEL_READY_TIMEOUT_S = 90
RUN_ALL_TIMEOUT_S = 240  # smoke mode: every notebook should run well under this on 2 cores
RENDER_GRACE_S = 10  # after the last cell finished, time for the frontend to draw the widgets
REDRAW_TIMEOUT_S = 30
ARROW_PRESSES = 3

# Selectors (JupyterLab 4.6, ipywidgets 8.1).
DIALOG = ".jp-Dialog"
# Only the notebook under test: a restored workspace may keep other notebooks open in hidden tabs.
PANEL = ".jp-NotebookPanel:visible"
SLIDER = ".jp-Notebook .widget-slider"
SLIDER_HANDLE = ".noUi-handle[role='slider']"
# A figure drawn into an Output widget (interactive_output / interact), or an ipywidgets.Image.
OUTPUT_IMAGE = ".jp-Notebook .widget-output img, .jp-Notebook img.widget-image"

# The toolbar's execution indicator says "idle" before the kernel is even connected (status bar: "No Kernel |
# Initializing"); running cells then opens a "Select Kernel" dialog. So ask the session context itself.
JS_KERNEL_STATE = """() => {
  const app = window.jupyterapp;
  if (!app || !app.shell) { return 'app not started'; }
  const panel = app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.context) { return 'no notebook panel'; }
  if (!panel.context.isReady || !panel.sessionContext.isReady) { return 'notebook not loaded'; }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel) { return 'no kernel'; }
  return kernel.connectionStatus + '/' + kernel.status;
}"""
KERNEL_READY = "connected/idle"

# Clear the stored outputs first (this also resets execution counts), so "done" below means this run's results.
JS_RUN_ALL = """() => {
  const app = window.jupyterapp;
  if (!app) { throw new Error('window.jupyterapp is missing: LabApp.expose_app_in_browser is off'); }
  return app.commands.execute('notebook:clear-all-cell-outputs').then(() => {
    void app.commands.execute('notebook:run-all-cells');
    return true;
  });
}"""

# Progress of Run All, from the notebook model: error outputs, code cells still without a count, kernel status.
JS_RUN_STATE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const model = panel && panel.content && panel.content.model;
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  const state = { errors: [], pending: 0, idle: !!kernel && kernel.status === 'idle' };
  if (!model) { state.pending = -1; return state; }
  for (const cell of model.cells) {
    if (cell.type !== 'code') { continue; }
    const source = cell.sharedModel ? cell.sharedModel.getSource() : 'x';
    if (cell.executionCount === null && source.trim() !== '') { state.pending += 1; }
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') { state.errors.push(out.ename + ': ' + out.evalue); }
    }
  }
  return state;
}"""

JS_IMAGE_SOURCES = f"""() => Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll(
                                         {json.dumps(OUTPUT_IMAGE)}),
                                     img => img.getAttribute('src') || '')"""


def widget_notebooks() -> list[str]:
    override = os.environ.get("MMSTN_UI_NOTEBOOKS", "").strip()
    if override:
        return [entry.strip() for entry in re.split(r"[,:]", override) if entry.strip()]
    return list(WIDGET_NOTEBOOKS)


def _source_path(entry: str) -> Path:
    path = Path(entry)
    return NOTEBOOKS_DIR / path if len(path.parts) == 1 else path.expanduser().resolve()


def _displays_widgets(notebook: Path) -> bool:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return any(
        WIDGET_VIEW_MIME in out.get("data", {})
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
        for out in cell.get("outputs", [])
    )


def test_widget_notebooks_are_listed():
    """Every committed notebook whose stored outputs show a widget must be in the browser-test list."""
    listed = {Path(entry).name for entry in WIDGET_NOTEBOOKS}
    missing = [nb.name for nb in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
               if _displays_widgets(nb) and nb.name not in listed]
    assert not missing, f"notebooks that display widgets but are not in WIDGET_NOTEBOOKS ({__file__}): {missing}"


class _Timer:
    def __init__(self):
        self.start = time.monotonic()
        self.last = self.start
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.marks[name] = round(now - self.last, 2)
        self.last = now

    @property
    def total(self) -> float:
        return round(time.monotonic() - self.start, 2)


def _wait_until(predicate, timeout: float, interval: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; return that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


@pytest.mark.ui
@pytest.mark.slow
@pytest.mark.parametrize("notebook", widget_notebooks(), ids=lambda entry: Path(entry).name)
def test_slider_redraws_figure(notebook, request, record_property):
    source = _source_path(notebook)
    if not source.is_file():
        pytest.fail(
            f"widget notebook {notebook!r} is listed for the browser test but {source} does not exist; "
            "create it or remove it from "
            + ("MMSTN_UI_NOTEBOOKS" if os.environ.get("MMSTN_UI_NOTEBOOKS", "").strip()
               else f"WIDGET_NOTEBOOKS in {__file__}"),
            pytrace=False,
        )
    lab = request.getfixturevalue("lab_page")  # skips (or fails in CI) here when Chromium is missing
    server = request.getfixturevalue("jupyter_lab")
    page = lab.page

    if source.parent.resolve() == NOTEBOOKS_DIR.resolve():
        relpath = source.name
    else:  # an injected scratch notebook: put it beside the copied notebooks
        (server.root_dir / "_external").mkdir(exist_ok=True)
        shutil.copy2(source, server.root_dir / "_external" / source.name)
        relpath = f"_external/{source.name}"
    screenshot = ARTIFACTS_DIR / f"{source.stem}.png"
    failure_shot = ARTIFACTS_DIR / f"{source.stem}-failure.png"
    for stale in (screenshot, failure_shot):
        stale.unlink(missing_ok=True)
    timer = _Timer()

    def fail(message: str):
        page.screenshot(path=str(failure_shot))
        console = "\n".join(lab.console[-20:]) or "(none)"
        pytest.fail(
            f"{notebook}: {message}\nscreenshot: {failure_shot}\n"
            f"--- browser console (errors/warnings) ---\n{console}\n"
            f"--- server log (tail) ---\n{server.log_tail(20)}",
            pytrace=False,
        )

    # 1. Open the notebook and wait until its kernel is connected and idle.
    # A workspace of its own, so JupyterLab restores no tabs from the notebooks tested before this one.
    workspace = f"ui-{len(server.timings)}-{re.sub(r'[^A-Za-z0-9]+', '-', source.stem)}"
    page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{relpath}", wait_until="domcontentloaded")
    if _wait_until(lambda: page.evaluate(JS_KERNEL_STATE) == KERNEL_READY, KERNEL_READY_TIMEOUT_S) is None:
        fail(f"kernel not ready after {KERNEL_READY_TIMEOUT_S} s (state: {page.evaluate(JS_KERNEL_STATE)})")
    timer.mark("open_s")

    # 2. Run all cells through the app's command registry; wait for a slider and a drawn image.
    page.evaluate(JS_RUN_ALL)
    panel = page.locator(PANEL)
    slider = panel.locator(SLIDER).first
    image = panel.locator(OUTPUT_IMAGE).first
    finished_at = None

    def widgets_or_error():
        nonlocal finished_at
        state = page.evaluate(JS_RUN_STATE)
        if state["errors"]:
            return {"errors": state["errors"]}
        if page.locator(DIALOG).count():
            return {"dialog": page.locator(DIALOG).first.inner_text()}
        if slider.count() and image.count():
            return {"ready": True}
        if state["pending"] == 0 and state["idle"]:
            finished_at = finished_at or time.monotonic()
            if time.monotonic() - finished_at > RENDER_GRACE_S:
                return {"finished": True}
        return None

    state = _wait_until(widgets_or_error, RUN_ALL_TIMEOUT_S, interval=0.5)
    if state is None:
        fail(f"Run All did not finish with a {SLIDER!r} and an image ({OUTPUT_IMAGE!r}) within {RUN_ALL_TIMEOUT_S} s")
    if "errors" in state:
        fail(f"a cell raised during Run All: {state['errors']}")
    if "dialog" in state:
        fail(f"a JupyterLab dialog opened during Run All: {state['dialog']!r}")
    if "finished" in state:
        fail(f"Run All finished, but found {slider.count()} x {SLIDER!r} and {image.count()} x {OUTPUT_IMAGE!r}; "
             "the first slider must redraw an image in a widget Output or an ipywidgets.Image")
    timer.mark("run_all_s")

    # 3. Move the first slider with the keyboard and wait for the redraw.
    handle = slider.locator(SLIDER_HANDLE).first
    handle.scroll_into_view_if_needed()
    value_before = handle.get_attribute("aria-valuenow")
    key = "ArrowLeft" if value_before == handle.get_attribute("aria-valuemax") else "ArrowRight"
    sources_before = set(page.evaluate(JS_IMAGE_SOURCES))
    handle.focus()
    for _ in range(ARROW_PRESSES):
        handle.press(key)

    def changed():
        value = handle.get_attribute("aria-valuenow")
        sources = page.evaluate(JS_IMAGE_SOURCES)
        new_image = bool(sources) and any(src not in sources_before for src in sources)
        return (value, sources) if value != value_before and new_image else None

    if _wait_until(changed, REDRAW_TIMEOUT_S) is None:
        value_after = handle.get_attribute("aria-valuenow")
        fail(
            f"after {ARROW_PRESSES}x {key} on the first slider: aria-valuenow {value_before} -> {value_after}, "
            f"image changed: {set(page.evaluate(JS_IMAGE_SOURCES)) - sources_before != set()} "
            f"(waited {REDRAW_TIMEOUT_S} s)"
        )
    timer.mark("redraw_s")

    _wait_until(lambda: page.evaluate(JS_RUN_STATE)["idle"], REDRAW_TIMEOUT_S)  # the last key press, too
    errors = page.evaluate(JS_RUN_STATE)["errors"]
    if errors:
        fail(f"the slider callback raised: {errors}")

    slider.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot))
    summary = (f"open {timer.marks['open_s']} s, run all {timer.marks['run_all_s']} s, "
               f"redraw {timer.marks['redraw_s']} s, test {timer.total} s "
               f"(server start {server.start_seconds:.1f} s, once per session); slider "
               f"{value_before} -> {handle.get_attribute('aria-valuenow')}; screenshot {screenshot}")
    record_property("ui_timing", summary)
    server.timings.append({"notebook": notebook, **timer.marks, "total_s": timer.total})

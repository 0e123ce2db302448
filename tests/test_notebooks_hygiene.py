"""Static checks on the committed notebooks (no kernel): what a reader opens on GitHub must be a clean run.

Every ``notebooks/NN_*.ipynb`` (the Makefile's glob) must be valid nbformat 4, use the ``python3`` kernelspec,
carry execution counts 1..n from one top-to-bottom run, keep no widget state and no error outputs, stay under
1 MB, install and download nothing, start by printing the environment (``mmstn.viz.print_environment()``), and
be listed in README.md. With no notebooks at all the checks fail instead of passing vacuously.

Regenerate outputs with ``make notebooks`` (executes in place without widget state).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
README = REPO_ROOT / "README.md"
SANITIZE_FILE = NOTEBOOKS_DIR / "nbval_sanitize.cfg"

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"  # the same glob as NOTEBOOKS in the Makefile
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob(NOTEBOOK_GLOB))
REQUIRED_NOTEBOOKS = ["01_morphable_model.ipynb"]
MAX_BYTES = 1_000_000
KERNEL_NAME = "python3"
FIRST_CELL_CALL = "print_environment("

# Code that installs packages or downloads at run time (the PyTorch3D / fastbook / MediaPipe failure mode).
FORBIDDEN_CODE = {
    "pip install (!pip / %pip)": re.compile(r"^\s*(?:%pip\b|!.*\bpip3?\b)", re.MULTILINE),
    "conda install (!conda / %conda)": re.compile(r"^\s*(?:%(?:conda|mamba)\b|!.*\b(?:conda|mamba)\b)", re.MULTILINE),
    "shell download (!wget / !curl)": re.compile(r"^\s*!.*\b(?:wget|curl)\b", re.MULTILINE),
    "shell cell that installs or downloads": re.compile(
        r"\A\s*%%(?:bash|sh|script)\b[\s\S]*\b(?:pip3?|conda|wget|curl)\b"
    ),
    "urllib": re.compile(r"\burllib\b"),
    "requests.get": re.compile(r"\brequests\.get\b"),
}


def _notebook_params():
    if not NOTEBOOKS:
        return [pytest.param(None, id="no-notebooks")]
    return [pytest.param(path, id=path.name) for path in NOTEBOOKS]


@pytest.fixture(params=_notebook_params())
def nb_path(request) -> Path:
    if request.param is None:
        pytest.fail(f"no notebooks matching {NOTEBOOK_GLOB} in {NOTEBOOKS_DIR}: the tutorial has no chapters")
    return request.param


@pytest.fixture
def raw(nb_path) -> dict:
    return json.loads(nb_path.read_text(encoding="utf-8"))


def _code_cells(raw: dict) -> list[dict]:
    return [cell for cell in raw.get("cells", []) if cell.get("cell_type") == "code"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


# --- the folder as a whole ------------------------------------------------------------------------------------


def test_required_notebooks_exist():
    names = [path.name for path in NOTEBOOKS]
    missing = [name for name in REQUIRED_NOTEBOOKS if name not in names]
    assert not missing, f"missing notebooks in {NOTEBOOKS_DIR}: {missing} (found: {names})"


def test_notebook_names_follow_the_numbering():
    """Notebooks outside the NN_topic.ipynb pattern are invisible to `make reproduce` and to nbval's gate."""
    stray = [p.name for p in NOTEBOOKS_DIR.glob("*.ipynb") if not p.match(NOTEBOOK_GLOB)]
    assert not stray, f"rename to NN_topic.ipynb or remove: {stray}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicates, f"two notebooks share a number: {duplicates}"


# --- each notebook --------------------------------------------------------------------------------------------


def test_valid_nbformat(nb_path, raw):
    assert raw.get("nbformat") == 4, f"{nb_path.name}: nbformat {raw.get('nbformat')}, expected 4"
    if raw.get("nbformat_minor", 0) >= 5:  # nbformat repairs missing ids silently; do not rely on that
        without_id = [i for i, cell in enumerate(raw.get("cells", [])) if "id" not in cell]
        assert not without_id, f"{nb_path.name}: cells without an id: {without_id}"
    nbformat.validate(nbformat.from_dict(copy.deepcopy(raw)))


def test_kernelspec_is_python3(nb_path, raw):
    name = raw.get("metadata", {}).get("kernelspec", {}).get("name")
    assert name == KERNEL_NAME, f"{nb_path.name}: kernelspec name {name!r}, expected {KERNEL_NAME!r}"


def test_execution_counts_are_one_clean_run(nb_path, raw):
    cells = _code_cells(raw)
    empty = [i for i, cell in enumerate(cells) if not _source(cell).strip()]
    assert not empty, f"{nb_path.name}: empty code cells (delete them): code cells {empty}"
    counts = [cell.get("execution_count") for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{nb_path.name}: execution counts {counts}; re-run top to bottom in a fresh kernel (`make notebooks`)"
    )


def test_no_saved_widget_state(nb_path, raw):
    assert "widgets" not in raw.get("metadata", {}), (
        f"{nb_path.name}: metadata.widgets holds saved widget state; "
        "save without it (`make notebooks` uses --ExecutePreprocessor.store_widget_state=False)"
    )


def test_no_error_outputs(nb_path, raw):
    errors = [
        f"code cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(_code_cells(raw))
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{nb_path.name} was saved with errors: {errors}"


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text", "")
        parts.append("".join(text) if isinstance(text, list) else text)
        plain = out.get("data", {}).get("text/plain", "")
        parts.append("".join(plain) if isinstance(plain, list) else plain)
    return "".join(parts)


def test_figures_are_png_at_100_dpi_or_more(nb_path, raw):
    import base64
    import io

    from PIL import Image

    cells = _code_cells(raw)
    jpeg = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if "image/jpeg" in o.get("data", {})]
    assert not jpeg, f"{nb_path.name}: JPEG figure outputs in code cells {jpeg}; use mmstn.viz.use_compact_figures()"
    for i, cell in enumerate(_code_cells(raw)):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                im = Image.open(io.BytesIO(base64.b64decode("".join(png) if isinstance(png, list) else png)))
                # a 72-dpi figure of the default 6.4 in width is 460 px wide; ours are at least 100 dpi
                assert max(im.size) >= 300, f"{nb_path.name} cell {i}: a {im.size} figure is too small to read"


def test_outputs_show_no_machine_paths(nb_path, raw):
    hits = [
        f"code cell {i}"
        for i, cell in enumerate(_code_cells(raw))
        if any(p in _output_text(cell) for p in ("/work/", "/home/", "/root/", "/tmp/", "/Users/"))
    ]
    assert not hits, f"{nb_path.name}: outputs print paths of the machine that ran them: {hits}"


def test_user_files_only_through_mmstn_data(nb_path, raw):
    hits = [
        f"code cell {i}"
        for i, cell in enumerate(_code_cells(raw))
        if "shared_data_dir" in _source(cell) or "../shared" in _source(cell)
    ]
    assert not hits, f"{nb_path.name}: reads the developers' reference folder (use mmstn.runtime.data_dir()): {hits}"


def test_size_limit(nb_path):
    size = nb_path.stat().st_size
    assert size < MAX_BYTES, f"{nb_path.name}: {size / 1e6:.2f} MB >= {MAX_BYTES / 1e6:.0f} MB; shrink the figures"


def test_no_installs_or_downloads(nb_path, raw):
    hits = [
        f"code cell {i}: {what}"
        for i, cell in enumerate(_code_cells(raw))
        for what, pattern in FORBIDDEN_CODE.items()
        if pattern.search(_source(cell))
    ]
    assert not hits, f"{nb_path.name}: installs/downloads belong in pyproject.toml or mmstn, not cells: {hits}"


def test_first_code_cell_prints_environment(nb_path, raw):
    cells = _code_cells(raw)
    assert cells, f"{nb_path.name} has no code cells"
    assert FIRST_CELL_CALL in _source(cells[0]), (
        f"{nb_path.name}: the first code cell must call mmstn.viz.print_environment() "
        "(mmstn version, torch version, device), so every stored run records what produced it"
    )


def test_listed_in_readme(nb_path):
    assert nb_path.name in README.read_text(encoding="utf-8"), f"{nb_path.name} is not listed in README.md"


# --- the nbval sanitize file ----------------------------------------------------------------------------------

SANITIZE_CASES = [
    ("<torch._C.Generator at 0x7f3a2c1b5e90>", "<torch._C.Generator at 0xADDRESS>"),
    ("<k3d.plot.Plot object at 0x7fabc1234560>", "<k3d.plot.Plot object at 0xADDRESS>"),
    ("<Figure size 640x480 with 1 Axes>", "<Figure size WxH with 1 Axes>"),
    ("fit:  40%|████      | 8/20 [00:01<00:02,  5.21it/s]", "fit:  <PROGRESS>"),
    ("done in 12.3 s (850 ms per step)", "done in <TIME> (<TIME> per step)"),
    ("Wall time: 1.21 s", "Wall time: <TIME>"),
    ("saved 2026-11-24 06:29:12", "saved <DATETIME>"),
    # numbers that must survive
    ("loss 0.123 after 20 steps, shape (8, 3, 224, 224), torch 2.13.0+cpu", None),
]


def test_sanitize_file_is_read_by_nbval():
    from nbval.plugin import get_sanitize_patterns

    text = SANITIZE_FILE.read_text(encoding="utf-8")
    patterns = get_sanitize_patterns(text)
    written = len(re.findall(r"^regex: ", text, flags=re.MULTILINE))
    assert len(patterns) == written, (
        f"nbval reads {len(patterns)} of the {written} regex/replace pairs in {SANITIZE_FILE.name}: "
        "each `regex:` line must be followed directly by its `replace:` line"
    )
    for regex, _ in patterns:
        re.compile(regex)


@pytest.mark.parametrize(("text", "expected"), SANITIZE_CASES)
def test_sanitize_patterns(text, expected):
    from nbval.plugin import get_sanitize_patterns

    out = text
    for regex, replace in get_sanitize_patterns(SANITIZE_FILE.read_text(encoding="utf-8")):
        out = re.sub(regex, replace, out)
    assert out == (text if expected is None else expected)


_FROM_IMPORT = re.compile(r"^\s*from (mmstn[\w.]*) import (.+)$", re.M)


def test_top_level_names_come_from_the_top_level(nb_path, raw):
    """A name that ``import mmstn`` offers is imported from ``mmstn``, so a reader learns one entry point."""
    import mmstn

    top = set(mmstn.__all__)
    bad = []
    for cell in _code_cells(raw):
        for module, names in _FROM_IMPORT.findall(_source(cell)):
            if module == "mmstn":
                continue
            for name in (n.strip().split(" as ")[0] for n in names.strip("()").split(",")):
                if name in top:
                    bad.append(f"{name} (from {module})")
    assert not bad, f"{nb_path.name}: import these from mmstn: {', '.join(bad)}"


def test_no_literal_theta_columns(nb_path, raw):
    """θ's columns are picked with mmstn.theta's named slices in notebooks too (tests/test_theta_layout.py)."""
    from test_theta_layout import offending

    bad = [line for cell in _code_cells(raw) for line in _source(cell).splitlines() if offending(line)]
    assert not bad, f"{nb_path.name}: literal θ column indices: {bad}"

"""The documentation: the Sphinx site builds with warnings as errors, its config reference lists every
key of every shipped config, and the README and docs stay within the repository."""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spikefa.config import CONFIGS_DIR

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _docs_module():
    spec = importlib.util.spec_from_file_location("spikefa_docs", DOCS / "_ext" / "spikefa_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sections(page: str) -> dict[str, str]:
    """The config reference split into one text per config (`## `name`` headings)."""
    parts = re.split(r"^## `([^`]+)`$", page, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_config_reference_lists_every_key_of_every_shipped_config():
    docs = _docs_module()
    sections = _sections(docs.configs_page(Path(CONFIGS_DIR)))
    shipped = sorted(Path(CONFIGS_DIR).glob("*.toml"))
    assert shipped and sorted(sections) == [p.stem for p in shipped]
    for path in shipped:
        keys = docs.flat_keys(tomllib.loads(path.read_text(encoding="utf-8")))
        missing = [k for k in keys if f"| `{k}` |" not in sections[path.stem]]
        assert not missing, f"{path.name}: keys missing from the config reference: {missing}"


def test_config_reference_reads_comments_beside_keys(tmp_path):
    docs = _docs_module()
    (tmp_path / "toy.toml").write_text(
        '# A toy experiment.\nexperiment = "toy"\nseed = 1          # the seed # with a hash\n'
        'name = "a # b"     # a string with a hash\n# about the table\n[train]\n'
        "epochs = 2.0       # how long\n                   # and more\n\n[[schedule]]\neta = 0.1  # first\n"
        "[[schedule]]\neta = 0.2  # second\n"
    )
    page = docs.configs_page(tmp_path)
    assert "A toy experiment." in page
    assert "| `seed` | `1` | the seed # with a hash |" in page
    assert '| `name` | `"a # b"` | a string with a hash |' in page
    assert "| `train.epochs` | `2.0` | how long and more |" in page and "about the table" in page
    assert (
        "| `schedule[0].eta` | `0.1` | first |" in page
        and "| `schedule[1].eta` | `0.2` | second |" in page
    )


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    missing = [m for m in ("sphinx", "myst_nb") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"building the docs needs {', '.join(missing)} (pip install -e '.[docs]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, f"sphinx -W failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (out / "index.html").is_file()
    configs = (out / "_generated" / "configs.html").read_text(encoding="utf-8")
    for path in Path(CONFIGS_DIR).glob("*.toml"):
        assert f"config-{path.stem.replace('_', '-')}" in configs
    assert (out / "api.html").is_file() and "spikefa.rate.network.Network" in (
        out / "api.html"
    ).read_text()


# Words that must not appear in user-facing files: documents outside the repository, internal checks.
OUTSIDE = re.compile(
    r"\.\./" + "shared|" + "SP" + "EC §|" + "CONT" + r"RACT\.md|check" + r" 0[0-9]", re.I
)


def test_readme_and_docs_stay_within_the_repository():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    texts = [REPO / "README.md", REPO / "pyproject.toml", *REPO.glob("CHANGELOG.md")]
    for folder in ("docs", "notebooks", "spikefa", "scripts", "models"):
        texts += [
            p
            for p in (REPO / folder).rglob("*")
            if p.suffix in (".md", ".py", ".toml", ".ipynb", ".sh", ".txt")
            and "_build" not in p.parts
            and "_generated" not in p.parts
        ]
    hits = [
        f"{p.relative_to(REPO)}:{i + 1}"
        for p in texts
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines())
        if OUTSIDE.search(line)
    ]
    assert not hits, f"references to documents outside the repository: {hits}"

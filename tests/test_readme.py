"""The README's notebook table and Colab badges match the notebooks and the measured run times."""

import subprocess
import sys

from conftest import ROOT


def test_readme_table_and_badges_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_notebook_has_a_row_and_a_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"(notebooks/{notebook.name})" in readme
        assert f"notebooks/{notebook.name}) {notebook.stem}" in readme

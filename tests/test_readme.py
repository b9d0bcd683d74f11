"""The README's notebook table and Colab badges match the notebooks and the measured run times."""

import importlib.util

from conftest import ROOT

SCRIPT = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
update_readme = importlib.util.module_from_spec(SCRIPT)
SCRIPT.loader.exec_module(update_readme)


def test_readme_table_and_badges_are_up_to_date(capsys):
    assert update_readme.main(["--check"]) == 0, capsys.readouterr().err


def test_every_notebook_has_a_row_and_a_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"(notebooks/{notebook.name})" in readme
        assert f"notebooks/{notebook.name}) {notebook.stem}" in readme

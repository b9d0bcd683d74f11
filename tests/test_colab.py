"""A Colab rehearsal: in a folder with no bundle, a fresh Python environment that already has torch and the
common packages (as Colab has), and a stand-in `google.colab`, notebook 01's set-up cell installs the bundle
from a local clone and the notebook runs to the end on the quick preset, leaving torch as it found it."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from test_notebooks import execute

NOTEBOOK = ROOT / "notebooks" / "01_sanity_check.ipynb"
TORCH_PROBE = "import torch; print(torch.__version__, torch.__file__)"


def colab_like_environment(folder: Path) -> Path:
    """A new virtual environment that sees this environment's packages (torch among them) but not the bundle."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "env")], check=True)
    python = folder / "env" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    preinstalled = folder / "preinstalled"  # this environment's packages, less the bundle itself
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("pico_llm", "__editable__", "picollm")) and entry.suffix != ".pth":
            (preinstalled / entry.name).symlink_to(entry)
    (site / "preinstalled.pth").write_text(f"{preinstalled}\n")
    return python


def stand_in_colab(folder: Path) -> Path:
    """An IPython profile whose start-up imports a `google.colab` module, as Colab's kernels have one."""
    (folder / "colab" / "google" / "colab").mkdir(parents=True)
    (folder / "colab" / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab\'s module."""\n')
    startup = folder / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(f"import sys\nsys.path.insert(0, {str(folder / 'colab')!r})\n"
                                         "import google.colab\n")
    return folder / "ipython"


@pytest.mark.notebook
def test_notebook_01_installs_the_bundle_on_colab_and_runs_without_touching_torch(tmp_path, monkeypatch):
    if not (ROOT / ".git").exists():
        pytest.skip("the rehearsal clones the repository, and this copy is not one")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", f"file://{ROOT}", str(clone)], check=True)
    python = colab_like_environment(tmp_path)
    probe = dict(capture_output=True, text=True, cwd=tmp_path)  # not from the checkout, which holds the bundle
    torch_before = subprocess.run([str(python), "-c", TORCH_PROBE], check=True, **probe).stdout
    assert subprocess.run([str(python), "-c", "import picollm_helpers"], **probe).returncode != 0, \
        "the fresh environment must not have the bundle yet"

    kernel = tmp_path / "jupyter" / "kernels" / "colab"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab rehearsal", "language": "python",
        "env": {"IPYTHONDIR": str(stand_in_colab(tmp_path)), "PICOLLM_BUNDLE": f"git+file://{clone}",
                "PICOLLM_PRESET": "quick", "HF_HUB_OFFLINE": "1", "PICOLLM_CACHE_DIR": str(tmp_path / "tokens"),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PICOLLM_ARTEFACTS_DIR": ""},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    work = tmp_path / "content"  # Colab's working folder: no bundle in it
    work.mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.metadata["kernelspec"] = {"name": "colab", "display_name": "Colab rehearsal", "language": "python"}
    execute(notebook, work / NOTEBOOK.name, kernel_name="colab")

    assert subprocess.run([str(python), "-c", TORCH_PROBE], **probe).stdout == torch_before
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, **probe).stdout.strip())
    assert not list(site.glob("torch*")), "torch must not be installed again"
    assert list(site.glob("pico_llm-*.dist-info")), "the set-up cell installed the bundle"
    assert (work / "artefacts" / "sanity_check.json").is_file(), "an installed bundle writes to ./artefacts"
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "preset quick" in outputs

"""picollm_helpers: the one module the pico-llm notebooks import.

Its sections, top to bottom (each uses only what stands above it):
  1. presets    run presets (quick, cpu, gpu) and the Transformer presets
  2. device     pick the device, the precision (autocast), seed everything; this process's rank
  3. tokenizer  GPT-2 through tiktoken, working offline
  4. data       text, read from its sources (sources), as GPT-2's ids (tokens), cut into
                training and held-out windows, packed or the starter's way (corpus)
  5. models     output heads, full or compact, and the fused loss (heads); the k-gram MLP,
                the LSTM, the Transformer and one factory (models); n-gram count models,
                the baseline beside every curve (counts); a Transformer that starts from
                the bigram counts (count_start)
  6. sampling   temperature, top-k, top-p, greedy; generate_text
  7. training   the recipe, train_model within a step or time budget, evaluate, checkpoints
                (training); training checkpoints and resuming an interrupted run (resume); the
                memory a run needs (memory); data-parallel runs (parallel); the checks of the
                assignment's parts a student writes, each against the bundle's own (exercises)
  8. experiments  artefacts and their provenance (artefacts); what every figure shares, its style
                and the count models' lines (drawing, which imports matplotlib only when it
                draws); each notebook's study, its runs, artefact, lessons and figures, and what
                they share (studies/); learning speed and where a step's compute goes (speed)
  9. plots      the other figures and the list of them all (plots), the slides made of them (slides);
                the sampling lab (lab); the questions a presenter may be asked about each notebook,
                answered from its run (questions). Loaded on first use (`h.draw_figure`, say):
                matplotlib and the widgets take a second to import, which the command line, and
                every process it starts, need not spend.
"""

import importlib

from .presets import *  # noqa: F401,F403
from .device import *  # noqa: F401,F403
from .tokenizer import *  # noqa: F401,F403
from .sources import *  # noqa: F401,F403
from .tokens import *  # noqa: F401,F403
from .corpus import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .counts import *  # noqa: F401,F403
from .count_start import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .resume import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .parallel import *  # noqa: F401,F403
from .exercises import *  # noqa: F401,F403
from .artefacts import *  # noqa: F401,F403
from .drawing import *  # noqa: F401,F403
from .studies import *  # noqa: F401,F403
from .speed import *  # noqa: F401,F403

keep_freed_memory_for_reuse()  # noqa: F405  (see its docstring: faster CPU training steps)

_DRAWING_SECTIONS = ("plots", "slides", "lab", "questions")


def _public_names(module) -> list[str]:
    return getattr(module, "__all__", [name for name in vars(module) if not name.startswith("_")])


def _load_drawing_sections() -> None:
    """Import section 9 and put its names beside the others, as `from .plots import *` would."""
    for section in _DRAWING_SECTIONS:
        module = importlib.import_module(f".{section}", __name__)
        globals().update({name: getattr(module, name) for name in _public_names(module) if name not in globals()})


def __getattr__(name: str):
    """A name not found among sections 1 to 8: section 9's, loaded now."""
    if name.startswith("__"):
        raise AttributeError(name)
    _load_drawing_sections()
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    _load_drawing_sections()
    return sorted(globals())

"""Section 8 (part two). The notebooks' studies: each notebook's runs, artefact, lessons and figures in one module.

  lessons          what every study shares: resumable runs over seeds, noise, lessons
  text_measures    what a sample reads like: words, variety, spans copied from the bundle's texts
  kgram_designs    notebook 02: three k-gram designs, the starter's loop, two context windows
  fastest_learner  notebook 03: which model learns fastest, per CPU second and per token
  writer           notebook 03: the Transformer that writes (the sampling lab's model)
  nucleus          notebook 04: what top-p does to the text
  own_text         notebook 05: how much text, and blending your text with the base corpus
  overfitting      notebook 06: overfitting one work, and the remedies side by side
  hyperparameters  notebook 07: learning rate x width, block size and depth at a fixed time budget
  notes_runs       the course notes' own small runs, kept for their command-line flags
  replay           one run of a study's artefact trained again by the study's code (pico-llm --rerun)
  trainings        what each notebook trains, and the memory it needs
"""

from .lessons import *  # noqa: F401,F403
from .text_measures import *  # noqa: F401,F403
from .kgram_designs import *  # noqa: F401,F403
from .fastest_learner import *  # noqa: F401,F403
from .writer import *  # noqa: F401,F403
from .nucleus import *  # noqa: F401,F403
from .own_text import *  # noqa: F401,F403
from .overfitting import *  # noqa: F401,F403
from .hyperparameters import *  # noqa: F401,F403
from .notes_runs import *  # noqa: F401,F403
from .replay import *  # noqa: F401,F403
from .trainings import *  # noqa: F401,F403

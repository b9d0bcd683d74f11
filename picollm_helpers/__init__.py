"""picollm_helpers: the one module the pico-llm notebooks import.

Its sections, top to bottom (each uses only what stands above it):
  1. presets    run presets (quick, cpu, gpu) and the Transformer presets
  2. device     pick the device, the precision (autocast), seed everything; this process's rank
  3. tokenizer  GPT-2 through tiktoken, working offline
  4. data       text, read from its sources (sources), as GPT-2's ids (tokens), cut into
                training and held-out windows, packed or the starter's way (corpus)
  5. models     output heads, full or compact, and the fused loss (heads); the k-gram MLP,
                the LSTM, the Transformer and one factory (models)
  6. sampling   temperature, top-k, top-p, greedy; generate_text
  7. training   the recipe, train_model within a step or time budget, evaluate, checkpoints
                (training); training checkpoints and resuming an interrupted run (resume); the
                memory a run needs (memory); data-parallel runs (parallel)
  8. experiments  artefacts and their provenance (artefacts); each notebook's study, its runs,
                artefact and lessons, and what they share (studies/); learning speed and
                where a step's compute goes (speed)
  9. plots      figures from histories and artefacts (plots), the slides made of them (slides);
                the sampling lab (lab)
"""

from .presets import *  # noqa: F401,F403
from .device import *  # noqa: F401,F403
from .tokenizer import *  # noqa: F401,F403
from .sources import *  # noqa: F401,F403
from .tokens import *  # noqa: F401,F403
from .corpus import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .resume import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .parallel import *  # noqa: F401,F403
from .artefacts import *  # noqa: F401,F403
from .studies import *  # noqa: F401,F403
from .speed import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .slides import *  # noqa: F401,F403
from .lab import *  # noqa: F401,F403

keep_freed_memory_for_reuse()  # noqa: F405  (see its docstring: faster CPU training steps)

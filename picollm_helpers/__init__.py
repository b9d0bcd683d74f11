"""picollm_helpers: the one module the pico-llm notebooks import.

Its sections, top to bottom (each uses only what stands above it):
  1. presets    run presets (quick, cpu, gpu) and the Transformer presets
  2. device     pick the device, the precision (autocast), seed everything; this process's rank
  3. tokenizer  GPT-2 through tiktoken, working offline
  4. data       text sources; the starter's per-example sequences (data) and packed
                token streams with random training windows (packing)
  5. models     output heads, full or compact, and the fused loss (heads); the k-gram MLP,
                the LSTM, the Transformer and one factory (models)
  6. sampling   temperature, top-k, top-p, greedy; generate_text
  7. training   the recipe, train_model within a step or time budget, evaluate, checkpoints
                (training); the memory a run needs (memory); data-parallel runs (parallel)
  8. experiments  artefacts and their provenance, the notebooks' experiments (experiments), the
                sweeps (sweeps), learning speed and where a step's compute goes (speed)
  9. plots      figures from histories and artefacts (plots), the slides made of them (slides);
                the sampling lab (lab)
"""

from .presets import *  # noqa: F401,F403
from .device import *  # noqa: F401,F403
from .tokenizer import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .packing import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .parallel import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .sweeps import *  # noqa: F401,F403
from .speed import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .slides import *  # noqa: F401,F403
from .lab import *  # noqa: F401,F403

keep_freed_memory_for_reuse()  # noqa: F405  (see its docstring: faster CPU training steps)

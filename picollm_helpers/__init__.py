"""picollm_helpers: the one module the pico-llm notebooks import.

Its sections, top to bottom (each uses only what stands above it):
  1. presets    run presets (quick, cpu, gpu) and the Transformer presets
  2. device     pick the device, seed everything
  3. tokenizer  GPT-2 through tiktoken, working offline
  4. data       sources -> token sequences -> MixedSequenceDataset -> DataLoader
  5. models     the loss, the k-gram MLP, the LSTM, the Transformer, one factory
  6. sampling   temperature, top-k, top-p, greedy; generate_text
  7. training   train_model, evaluate, checkpoints
  8. experiments  the sweeps, each writing one artefact
  9. plots      figures from histories and artefacts; the sampling lab
"""

from .presets import *  # noqa: F401,F403
from .device import *  # noqa: F401,F403
from .tokenizer import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .sweeps import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .lab import *  # noqa: F401,F403

keep_freed_memory_for_reuse()  # noqa: F405  (see its docstring: faster CPU training steps)

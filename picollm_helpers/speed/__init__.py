"""Section 8 (continued). Learning speed, and where a training step's compute goes.

The yardstick of the bundle is learning speed: the held-out loss (full-vocabulary nats per
token) a model reaches after a fixed number of seconds of training on real text. The
learning-speed benchmark trains the same model several ways for the same seconds and records
the held-out loss against time. The step breakdown profiles one training step and splits its
time into the output head, the softmax and loss, the blocks, and the optimizer; the fused-loss
comparison measures the chunked linear + cross-entropy against the plain path.

  learning_speed  the learning-speed benchmark, the recipe sweep, and the count models beside them
  step_costs      where one training step's time goes; the fused loss against the plain path
  throughput      training tokens/s per preset, number format and compile, against the matrix peak
"""

from .learning_speed import *  # noqa: F401,F403
from .step_costs import *  # noqa: F401,F403
from .throughput import *  # noqa: F401,F403

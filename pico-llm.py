#!/usr/bin/env python3
"""pico-llm from the command line: a thin front door over picollm_helpers (see picollm_helpers/cli.py).

Accepts the original starter's flags. The sanity check from the course notes:

    OMP_NUM_THREADS=1 python3 pico-llm.py --tinystories_weight 0.0 --input_files 3seqs.txt \\
        --block_size 32 --max_steps_per_epoch 1 --kgram_k 2 --embed_size 64 --device_id cpu
"""

import sys

from picollm_helpers.cli import main

if __name__ == "__main__":
    sys.exit(main())

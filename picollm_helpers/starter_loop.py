"""Time the starter's k-gram loop in a process of its own: python -m picollm_helpers.starter_loop JOB.

studies.kgram_designs.time_starter_loop_as_the_starter_runs writes JOB (the model's config and initial
weights, the batches, the recipe, the number of threads) and reads back the one line of JSON
this prints.
"""

import json
import sys

import torch

from .studies.kgram_designs import time_starter_loop
from .models import KGramMLPSeqModel
from .training import Recipe


def main(job_path: str) -> None:
    job = torch.load(job_path)
    torch.set_num_threads(job["threads"])
    model = KGramMLPSeqModel(**job["config"])
    model.load_state_dict(job["weights"])
    print(json.dumps(time_starter_loop(model, job["batches"], Recipe(**job["recipe"]))))


if __name__ == "__main__":
    main(sys.argv[1])

"""The universal predictors on the Gemma validation / test subsets of the 203 Gemma chains they never saw.

python reports/other_lms/gemma_subsets.py val|test   (from the repository root; reads this folder's
universal-gemma-unseen.json and the shipped Gemma predictor's split)"""
import json
import sys

import numpy as np

from predictor.metrics import bootstrap_ci

part = sys.argv[1]
j = json.load(open("reports/other_lms/universal-gemma-unseen.json"))
split = json.load(open("predictor/pretrained/gemma3-270m-joint/predictor.json"))["split"]
keep = set(split[part])
idx = [k for k, i in enumerate(j["ids"]) if i in keep]
a = np.array(j["rows"]["retrained"]["per_chain"])[idx]
b = np.array(j["rows"]["shipped"]["per_chain"])[idx]
print(part, len(idx), "chains; retrained", bootstrap_ci(a), "replaced", bootstrap_ci(b), "retrained minus replaced",
      bootstrap_ci(a - b), "better on", int((a > b).sum()))

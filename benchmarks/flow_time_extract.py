"""One-pass feature-extraction time per chain: default groups vs + value_norm / multihop (same process, 1 thread)."""
import json, statistics, sys, time
from predictor.runtime import load_lm_on
from predictor.features import DEFAULT_GROUPS, FeatureSpec, extract_features_many
from predictor.chains import as_chain

path, k, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
recs = [json.loads(l) for l in open(path)][-k:]  # the file's last chains
chains = [as_chain({f: r[f] for f in ("id", "question", "reasoning", "answer")}) for r in recs]
lm = load_lm_on(None, "cpu", 1)
specs = {"default": FeatureSpec(groups=DEFAULT_GROUPS),
         "+value_norm": FeatureSpec(groups=DEFAULT_GROUPS + ("value_norm",)),
         "+multihop": FeatureSpec(groups=DEFAULT_GROUPS + ("multihop",)),
         "+both": FeatureSpec(groups=DEFAULT_GROUPS + ("value_norm", "multihop"))}
times = {s: [] for s in specs}
extract_features_many(lm, chains[:1], specs["+both"])  # warm-up
for r in range(reps):
    for name, spec in specs.items():  # interleaved, so load changes hit every spec alike
        t = time.perf_counter()
        extract_features_many(lm, chains, spec)
        times[name].append((time.perf_counter() - t) / len(chains))
ntok = [len(r["reasoning_ids"]) + len(r["prompt_ids"]) + len(r["answer_ids"]) for r in recs]
print(f"{len(chains)} chains, {min(ntok)}-{max(ntok)} tokens (mean {statistics.mean(ntok):.0f}), {reps} runs each")
base = statistics.median(times["default"])
for name, ts in times.items():
    med = statistics.median(ts)
    print(f"{name:12s} median {med * 1000:7.1f} ms/chain (min {min(ts) * 1000:.1f}, max {max(ts) * 1000:.1f}) ratio {med / base:.3f}")

"""Mean per-token NLL of chains under an LM, with and without the BOS token the layout now adds.

Scores the JOINT part (reasoning + answer, each token given everything before it) of the first
chains of a queue in the default layout, once as is (BOS first for base LMs whose tokenizer adds
one) and once with the BOS removed from the prompt.

    python benchmarks/bos_nll.py --model gemma3-270m --chains data/chains/gsm8k-train-20-64-gemma3.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from predictor.chains import read_chains
    from predictor.layout import encode_chain, prompt_format
    from predictor.lm import load_lm
    from predictor.objective import sequence_objective

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--chains", default="data/chains/gsm8k-train-20-64-gemma3.jsonl")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = load_lm(args.model)
    bos = lm.tokenizer.bos_token_id
    nll = {"with BOS": 0.0, "without BOS": 0.0}
    tokens = 0
    for c in read_chains(args.chains)[: args.limit]:
        lay = encode_chain(lm.tokenizer, c, lm.max_length)
        ids, p, a = lay.sequence(), len(lay.prompt_ids), len(lay.answer_ids)
        if ids[0] != bos:
            raise SystemExit(f"{lm.name}: the layout adds no BOS (prompt format {prompt_format(lm.tokenizer)})")
        nll["with BOS"] -= sequence_objective(lm.model, ids, p, a, "joint")
        nll["without BOS"] -= sequence_objective(lm.model, ids[1:], p - 1, a, "joint")
        tokens += len(ids) - p
    print(f"{lm.name} ({lm.fingerprint}), prompt format {prompt_format(lm.tokenizer)}, "
          f"{args.limit} chains, {tokens} scored tokens")
    for k, v in nll.items():
        print(f"  mean NLL per token {k}: {v / tokens:.3f} nats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

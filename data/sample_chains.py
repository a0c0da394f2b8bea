"""Sample an LM's own reasoning for GSM8K questions: chains in the style inference-time users prune.

GSM8K's reference solutions are terse, human-written arithmetic; an LM's sampled reasoning is
phrased differently. A predictor trained on one style only learns that style (issue 13). This
script asks the LM (default: the embedded SmolLM2) each question in the package's scoring layout
(`predictor.layout.encode_prompt`; with --instruction appended when sampling only, since the 135M LM
otherwise rambles past any length a CPU can label), samples a continuation that ends on its own
within --max-new-tokens, and keeps it as the reasoning, with the LM's *own* final number
as the answer (what an inference-time user keeps; the GSM8K answer is stored as `gsm8k_answer`).
Questions whose GSM8K row is in data/chains/gsm8k-train-20-64.jsonl are skipped, so no question is
shared with the main chains and their splits.

    python data/sample_chains.py --n 300 --out data/chains/smollm2-sampled-20-64.jsonl

Rows are visited in a seeded shuffle; each row's sample uses its own seed (seed, row), so a rerun
reproduces the file and resumes from what it holds (checkpointed atomically every --every chains).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
CUT = re.compile(r"\n?\s*(?:The (?:final )?answer is|Answer:|####)", re.IGNORECASE)


def final_number(text: str) -> str | None:
    """The last number in text, without currency sign, thousands separators or a trailing '.0'."""
    found = NUMBER.findall(text)
    if not found:
        return None
    x = found[-1].replace("$", "").replace(",", "")
    return x[:-2] if x.endswith(".0") else x


def sample_reasoning(lm, question: str, seed: int, temperature: float, top_p: float, max_new: int,
                     instruction: str = "") -> str | None:
    """One sampled continuation of the layout's prompt for `question` (+ instruction), cut before an
    answer line; None when the LM had not finished within max_new tokens (no end token, no answer line)."""
    import torch

    from predictor.layout import encode_prompt

    tok = lm.tokenizer
    prompt = encode_prompt(tok, question + instruction)
    stop = sorted({i for i in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")) if isinstance(i, int)})
    torch.manual_seed(seed)
    with torch.no_grad():
        out = lm.model.generate(torch.tensor([prompt]), do_sample=True, temperature=temperature, top_p=top_p,
                                max_new_tokens=max_new, eos_token_id=stop, pad_token_id=stop[0])
    new = out[0, len(prompt):].tolist()
    text = tok.decode(new, skip_special_tokens=True)
    m = CUT.search(text)
    if m is None and not any(t in stop for t in new):
        return None
    return (text[:m.start()] if m else text).strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsm8k", default=str(ROOT.parent / "shared/data/gsm8k/train.jsonl"), help="GSM8K train JSONL")
    ap.add_argument("--exclude", default=str(ROOT / "data/chains/gsm8k-train-20-64.jsonl"),
                    help="chains file whose GSM8K rows are skipped (ids gsm8k-train-ROW)")
    ap.add_argument("--out", default=str(ROOT / "data/chains/smollm2-sampled-20-64.jsonl"))
    ap.add_argument("--model", default=None, help="LM to sample from (default: the embedded SmolLM2)")
    ap.add_argument("--n", type=int, default=300, help="chains to keep")
    ap.add_argument("--min-tokens", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=72)
    ap.add_argument("--instruction", default=" Answer briefly.",
                    help="appended to the question when sampling only (the chain stores the plain question)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=25, help="checkpoint the output every N kept chains")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from predictor.chains import Chain, read_gsm8k
    from predictor.jsonl_io import atomic_write_jsonl
    from predictor.layout import ChainError, encode_chain
    from predictor.lm import load_lm

    torch.set_num_threads(args.threads)
    rows = read_gsm8k(args.gsm8k, "gsm8k-train")
    skip = {json.loads(line)["id"] for line in Path(args.exclude).read_text(encoding="utf-8").splitlines() if line.strip()}
    rows = [c for c in rows if c.id not in skip]
    random.Random(args.seed).shuffle(rows)
    out = Path(args.out)
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if out.exists() else []
    settings = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
                "seed": args.seed, "instruction": args.instruction}
    if kept and kept[0].get("sampling") != settings:
        print(f"{out}:1: field 'sampling' {kept[0].get('sampling')} differs from this run's {settings}; "
              "use another --out", file=sys.stderr)
        return 2
    last = max((r["visit"] for r in kept), default=-1)  # rows up to the last kept one were all tried
    lm = load_lm(args.model)
    t0, tried, new = time.time(), 0, 0
    for visit, c in enumerate(rows):
        if len(kept) >= args.n:
            break
        if visit <= last:
            continue
        row = int(c.id.rsplit("-", 1)[1])
        reasoning = sample_reasoning(lm, c.question, args.seed * 1_000_003 + row, args.temperature, args.top_p,
                                     args.max_new_tokens, args.instruction)
        tried += 1
        answer = final_number(reasoning) if reasoning else None
        if answer is None:
            continue
        chain = Chain(c.question, reasoning, answer, f"smollm2-sampled-{row}")
        try:
            n = encode_chain(lm.tokenizer, chain, lm.max_length).n
        except ChainError:
            continue
        if not args.min_tokens <= n <= args.max_tokens:
            continue
        kept.append({"id": chain.id, "question": c.question, "reasoning": reasoning, "answer": answer,
                     "gsm8k_answer": c.answer, "gsm8k_row": c.id, "visit": visit, "sampling": settings,
                     "source": f"sampled from {lm.name} [{lm.fingerprint}]"})
        new += 1
        el = time.time() - t0
        print(f"\r{len(kept)}/{args.n} kept ({tried} sampled this run), {el:.0f} s, "
              f"ETA {el / new * (args.n - len(kept)):.0f} s", end="", file=sys.stderr)
        if len(kept) % args.every == 0:
            atomic_write_jsonl(out, kept)
    atomic_write_jsonl(out, kept)
    agree = sum(r["answer"] == r["gsm8k_answer"] for r in kept)
    print(f"\nwrote {len(kept)} chains to {out} ({tried} sampled this run); the LM's answer equals GSM8K's "
          f"in {agree}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

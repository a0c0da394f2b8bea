"""Step 1 of the pairwise-attention experiment (docs/quality.md): for every main and extra chain, the
embedded LM's attention among the reasoning tokens, mean over heads, per layer -> runs/pairwise/attn/ID.npy
(float16 [layers, n, n], query x key). Resumable (one file per chain, temp + rename); ~2-3 s per chain
on one busy CPU thread.

    python benchmarks/pairwise_attention_extract.py
"""
import sys, time
from pathlib import Path
import numpy as np, torch
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
from predictor.lm import load_lm, base_and_head
from predictor.observe import attention_modules, eager_attention
from predictor.layout import encode_chain
from predictor.ranked import read_ranked, record_chain

torch.set_num_threads(1)
out = Path(str(ROOT / "runs/pairwise/attn")); out.mkdir(parents=True, exist_ok=True)
main = read_ranked(str(ROOT / "data/ranked/gsm8k-smollm2-joint.jsonl"), objective="joint")
ids = {r["id"] for r in main}
extra = [r for r in read_ranked(str(ROOT / "data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl"), objective="joint") if r["id"] not in ids]
lm = load_lm(None)
base, _, _ = base_and_head(lm.model)
recs = main + extra
t0 = time.time()
for k, rec in enumerate(recs):
    f = out / f"{rec['id']}.npy"
    if f.exists():
        continue
    lay = encode_chain(lm.tokenizer, record_chain(rec), lm.max_length)
    p, n = len(lay.prompt_ids), lay.n
    mats = []
    def hook(_m, _i, o):
        mats.append(o[1][0, :, p:p + n, p:p + n].mean(0).to(torch.float16).clone())
        return (o[0], None) + tuple(o[2:])
    hs = [m.register_forward_hook(hook) for m in attention_modules(lm.model)]
    try:
        with torch.no_grad(), eager_attention(lm.model):
            base(input_ids=torch.tensor([lay.sequence()]), use_cache=False)
    finally:
        for h in hs: h.remove()
    tmp = out / f"{rec['id']}.tmp.npy"
    np.save(tmp, torch.stack(mats).numpy()); tmp.rename(f)
    if k % 20 == 0:
        print(k, len(recs), f"{time.time()-t0:.0f}s", flush=True)
print("done", flush=True)

"""Step 2 of the pairwise-attention experiment (docs/quality.md): does the LM's token-to-token attention
graph, given to the ranker as an input, predict the greedy order better than per-token features?

A bidirectional sequence ranker (as regressors/sequence.py) whose self-attention logits get an
additive bias per head computed by a small MLP from the LM's pairwise attention between the two
tokens (both directions, every layer, log-scaled, standardized): an edge-biased Transformer
(Graphormer-style). "none" is the same network with no bias. Per-token inputs: base + hidden
features from the feature cache. Training: main-file training chains + extra chains, full states;
early stopping and selection on validation; test reported with --test, never used for a choice.

    python benchmarks/pairwise_attention_probe.py --seeds 0 --test   # after pairwise_attention_extract.py
"""
import sys, time, argparse
from pathlib import Path
import numpy as np, torch
from torch import nn
import torch.nn.functional as F
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
from predictor.lm import load_lm
from predictor.ranked import read_ranked
from predictor.splits import split_ids
from predictor.features import FeatureSpec
from predictor.feature_cache import FeatureCache
from predictor.training_data import build_training_data
from predictor.regressors.losses import get_loss
from predictor.metrics import per_chain_spearman, bootstrap_ci

ap = argparse.ArgumentParser()
ap.add_argument("--seeds", default="0,1")
ap.add_argument("--modes", default="edge,none")
ap.add_argument("--epochs", type=int, default=60)
ap.add_argument("--channels", default="all")  # all | pooled
ap.add_argument("--test", action="store_true")
args = ap.parse_args()
torch.set_num_threads(1)
BASE = ("attention", "probe", "logits", "position", "lexical", "hidden")
main = read_ranked(str(ROOT / "data/ranked/gsm8k-smollm2-joint.jsonl"), objective="joint")
ids = {r["id"] for r in main}
extra = [r for r in read_ranked(str(ROOT / "data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl"), objective="joint") if r["id"] not in ids]
lm = load_lm(None)
data = build_training_data(main + extra, lm, FeatureSpec(groups=BASE), (0.0,), cache=FeatureCache(), progress=False)
split = split_ids([r["id"] for r in main])
ex = {e.chain_id: e for e in data.examples if e.fraction == 0.0}
adir = Path(str(ROOT / "runs/pairwise/attn"))
def pair(cid):
    a = np.load(adir / f"{cid}.npy").astype(np.float32)  # [L, n, n] query x key
    if args.channels == "pooled":
        L = a.shape[0]; a = np.stack([a[i * L // 6:(i + 1) * L // 6].mean(0) for i in range(6)])
    a = np.log(a + 1e-4)
    return np.concatenate([a, a.transpose(0, 2, 1)], 0)  # [2C, n, n]: j->i and i->j
tr_ids = [i for i in split["train"]] + [r["id"] for r in extra]
def bundle(idl):
    idl = [i for i in idl if i in ex and (adir / f"{i}.npy").exists()]
    return [ex[i].X for i in idl], [ex[i].y for i in idl], [pair(i) for i in idl], idl
Xtr, ytr, Etr, _ = bundle(tr_ids); Xva, yva, Eva, _ = bundle(split["val"]); Xte, yte, Ete, _ = bundle(split["test"])
print("train", len(Xtr), "val", len(Xva), "test", len(Xte), flush=True)
flat = np.concatenate(Xtr).astype(np.float64); mu = flat.mean(0); sd = np.maximum(flat.std(0), 1e-6)
std = lambda X: [np.clip((x - mu) / sd, -10, 10).astype(np.float32) for x in X]
Xtr, Xva, Xte = std(Xtr), std(Xva), std(Xte)
ef = np.concatenate([e.reshape(e.shape[0], -1) for e in Etr], 1); emu = ef.mean(1); esd = ef.std(1) + 1e-6
Cn = Etr[0].shape[0]

class EdgeLayer(nn.Module):
    def __init__(s, d, h, C, drop):
        super().__init__(); s.h = h; s.n1 = nn.LayerNorm(d); s.qkv = nn.Linear(d, 3 * d); s.o = nn.Linear(d, d)
        s.n2 = nn.LayerNorm(d); s.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(drop), nn.Linear(2 * d, d))
        s.eb = nn.Sequential(nn.Linear(C, 32), nn.GELU(), nn.Linear(32, h)) if C else None; s.drop = nn.Dropout(drop)
    def forward(s, x, E, mask):
        B, T, D = x.shape
        q, k, v = s.qkv(s.n1(x)).view(B, T, 3, s.h, D // s.h).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(B, s.h, T, T)
        if s.eb is not None:
            bias = s.eb(E.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + s.drop(s.o(a.transpose(1, 2).reshape(B, T, D)))
        return x + s.drop(s.ff(s.n2(x)))

class EdgeRanker(nn.Module):
    def __init__(s, Fdim, C, d=64, layers=2, h=4, drop=0.1):
        super().__init__()
        s.proj = nn.Sequential(nn.Linear(Fdim, d), nn.GELU(), nn.Dropout(drop))
        s.local = nn.Conv1d(d, d, 5, padding=2)
        s.layers = nn.ModuleList([EdgeLayer(d, h, C, drop) for _ in range(layers)])
        s.head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, 1))
    def forward(s, x, E, mask):
        h = s.proj(x) * mask[..., None]
        z = h + F.gelu(s.local(h.transpose(1, 2)).transpose(1, 2)) * mask[..., None]
        for l in s.layers:
            z = l(z, E, mask)
        return s.head(torch.cat([z, h], -1)).squeeze(-1)

def batch(X, y, E, idx):
    T = max(len(X[i]) for i in idx); B = len(idx)
    x = torch.zeros(B, T, X[0].shape[1]); t = torch.zeros(B, T); m = torch.zeros(B, T, dtype=torch.bool)
    e = torch.zeros(B, Cn, T, T)
    for b, i in enumerate(idx):
        n = len(X[i]); x[b, :n] = torch.from_numpy(X[i]); t[b, :n] = torch.from_numpy(y[i]); m[b, :n] = True
        e[b, :, :n, :n] = torch.from_numpy((E[i] - emu[:, None, None]) / esd[:, None, None])
    return x, t, m, e

def predict(net, X, y, E):
    net.eval(); out = []
    with torch.no_grad():
        for i in range(len(X)):
            x, t, m, e = batch(X, y, E, [i]); out.append(net(x, e, m)[0].numpy())
    net.train(); return out

loss_fn = get_loss("mse+pairwise")
res = {}
for mode in args.modes.split(","):
    for seed in map(int, args.seeds.split(",")):
        torch.manual_seed(seed); rng = np.random.default_rng(seed)
        net = EdgeRanker(Xtr[0].shape[1], Cn if mode == "edge" else 0)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
        best, bstate, bad, t0 = -1, None, 0, time.time()
        for ep in range(args.epochs):
            perm = rng.permutation(len(Xtr))
            for a in range(0, len(perm), 16):
                x, t, m, e = batch(Xtr, ytr, Etr, perm[a:a + 16])
                loss = loss_fn(net(x, e, m), t, m); opt.zero_grad(); loss.backward(); opt.step()
            v = float(np.mean(per_chain_spearman(predict(net, Xva, yva, Eva), yva)))
            if v > best:
                best, bad = v, 0; bstate = {k: w.clone() for k, w in net.state_dict().items()}
            else:
                bad += 1
                if bad >= 12: break
        net.load_state_dict(bstate)
        pv = predict(net, Xva, yva, Eva); rv = per_chain_spearman(pv, yva)
        line = f"{mode} seed {seed}: val {rv.mean():.3f} {bootstrap_ci(rv)} epochs {ep+1} {time.time()-t0:.0f}s"
        if args.test:
            pt = predict(net, Xte, yte, Ete); rt = per_chain_spearman(pt, yte); line += f" test {rt.mean():.3f}"
            res[(mode, seed)] = (pv, pt)
        else:
            res[(mode, seed)] = (pv,)
        print(line, flush=True)
# paired val difference of seed-averaged rank predictions
from scipy.stats import rankdata
def avg(mode, k):
    ss = [res[(m, s)][k] for (m, s) in res if m == mode]
    return [np.mean([rankdata(p[i]) for p in ss], 0) for i in range(len(ss[0]))]
modes = args.modes.split(",")
if len(modes) == 2:
    a, b = per_chain_spearman(avg(modes[0], 0), yva), per_chain_spearman(avg(modes[1], 0), yva)
    d = a - b; print(f"val seed-avg {modes[0]} {a.mean():.3f} {modes[1]} {b.mean():.3f} diff {d.mean():+.3f} {bootstrap_ci(d)}")

"""Fill the feature cache of the narrower specs from the cache of the widest one (the same columns: a group's
columns do not depend on the other groups; the attention statistics are bit-identical with and without flow
(tests/test_attention_flow.py)), so each ablation run trains on exactly what its own extraction would give."""
import io, json, sys
from pathlib import Path
import numpy as np
from predictor.features import DEFAULT_GROUPS, FeatureSpec
from predictor.feature_cache import _names_sha

root, lm_fp = Path(sys.argv[1]), sys.argv[2]
# further arguments: comma lists of groups (default: the ablation's default, + value_norm, + multihop)
targets = [tuple(a.split(",")) for a in sys.argv[3:]] or [DEFAULT_GROUPS + e for e in ((), ("value_norm",), ("multihop",))]
wide = FeatureSpec(groups=DEFAULT_GROUPS + ("value_norm", "multihop"))
src = root / lm_fp / wide.fingerprint()
meta = json.loads((src / "names.json").read_text())
names, groups = meta["names"], meta["groups"]
for target in targets:
    spec = FeatureSpec(groups=target)
    keep = [i for i, g in enumerate(groups) if g in spec.groups]
    sub_names, sub_groups = [names[i] for i in keep], [groups[i] for i in keep]
    dst = root / lm_fp / spec.fingerprint()
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "names.json").write_text(json.dumps({"names": sub_names, "groups": sub_groups, "spec": spec.to_dict(),
                                                "lm": lm_fp}))
    k = 0
    for f in src.glob("*/*.npz"):
        with np.load(f, allow_pickle=False) as z:
            vals = z["values"][:, keep]
        out = dst / f.parent.name / f.name
        out.parent.mkdir(exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, values=vals, names_sha=np.array(_names_sha(sub_names, sub_groups)))
        out.write_bytes(buf.getvalue())
        k += 1
    print(spec.groups, len(sub_names), "columns", k, "tables ->", dst)

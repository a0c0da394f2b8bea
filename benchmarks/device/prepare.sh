#!/usr/bin/env bash
# Prepare .device/ (git-ignored through .git/info/exclude) for one run of benchmarks/device/gpu_run.py on
# the lent GPU machine, which has no package index and receives at most 64 MiB (working tree + carry).
#
#   bash benchmarks/device/prepare.sh            # from the repository root, right before the device call
#
# .device/wheels        the wheels the device lacks (cp312, manylinux x86_64), exact versions, no deps:
#                       transformers 5.24.0 (the device has 5.17.0; pyproject needs >=5.23,<5.25) and
#                       lightgbm 4.7.0 (absent there; the shipped predictor's regressors). Every other
#                       requirement of theirs is on the device in a satisfying version (checked below
#                       against KINDS.md's readings: huggingface_hub 1.33.0, tokenizers 0.23.2,
#                       safetensors 0.8.0, numpy 2.5.2; regex, pyyaml, typer, tqdm, packaging, narwhals,
#                       scipy present, and the device's transformers 5.17 already needed regex>=2025.10.22).
#                       gguf is not carried: predictor imports it only to convert a GGUF file.
# .device/model-config  config.json + tokenizer files of the embedded LM (no weights: random weights of
#                       the same architecture are built there)
# .device/lib           libgomp.so.1, preloaded by gpu_run.py only if lightgbm cannot find OpenMP there
# .device/labeled-ids.txt  ids already labeled exactly here (data/ranked/**, runs/label/*.jsonl), which
#                       part c does not label again
#
# Checks: .device under 25 MiB, and everything that travels (tracked + untracked-not-ignored files +
# .device) under 64 MiB. Exits non-zero if a check fails.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PY:-.venv/bin/python}
MODEL_CACHE=${PREDICTOR_CACHE:-$HOME/.cache/predictor}/models/SmolLM2-135M-Instruct.Q4_1
WHEELS=(transformers==5.24.0 lightgbm==4.7.0)

mkdir -p .git/info
grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude

rm -rf .device/wheels .device/model-config .device/lib
mkdir -p .device/wheels .device/model-config .device/lib

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .device/wheels "${WHEELS[@]}"

[ -f "$MODEL_CACHE/config.json" ] || "$PY" -c "from predictor.lm import _resolve; _resolve(None)"  # converts once
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja \
         special_tokens_map.json source.json; do
    [ -f "$MODEL_CACHE/$f" ] && cp "$MODEL_CACHE/$f" .device/model-config/
done

GOMP=$(ldconfig -p | awk '/libgomp.so.1 .*x86-64/ {print $NF; exit}')
[ -n "$GOMP" ] && cp -L "$GOMP" .device/lib/libgomp.so.1

"$PY" - <<'EOF'
"""Requirements of the carried wheels against the device's versions; the ids already labeled exactly."""
import glob
import json
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# python3 -m pip list on the device, as KINDS.md records it (2026-11), plus names it lists without a version
DEVICE = {"huggingface-hub": "1.33.0", "tokenizers": "0.23.2", "safetensors": "0.8.0", "numpy": "2.5.2",
          "torch": "2.11.0", "accelerate": "1.15.0"}
PRESENT = {"regex", "pyyaml", "typer", "tqdm", "packaging", "narwhals", "scipy", "filelock"}
carried = {canonicalize_name(Path(w).name.split("-")[0]) for w in glob.glob(".device/wheels/*.whl")}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_machine": "x86_64",
       "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
bad = []
for whl in sorted(glob.glob(".device/wheels/*.whl")):
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in carried:
            state = "carried"
        elif name in DEVICE:
            ok = req.specifier.contains(DEVICE[name], prereleases=True)
            state = f"device {DEVICE[name]}: {'ok' if ok else 'NOT SATISFIED'}"
            if not ok:
                bad.append(f"{Path(whl).name}: {req}")
        elif name in PRESENT:
            state = "on the device (version not recorded; see prepare.sh's header)"
        else:
            state = "NOT KNOWN ON THE DEVICE"
            bad.append(f"{Path(whl).name}: {req}")
        print(f"  {Path(whl).name.split('-')[0]} needs {req}: {state}")
if bad:
    raise SystemExit("unsatisfied on the device: " + "; ".join(bad))

from predictor.ranked import approximate_label  # noqa: E402

ids = set()
files = glob.glob("data/ranked/**/*.jsonl", recursive=True) + glob.glob("runs/label/*.jsonl")
for f in files:
    for line in open(f, errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if (isinstance(rec, dict) and "order" in rec and rec.get("objective", "joint") == "joint"
                and approximate_label(rec) is None):
            ids.add(str(rec["id"]))
Path(".device/labeled-ids.txt").write_text("".join(f"{i}\n" for i in sorted(ids)))
print(f"  {len(ids)} ids labeled exactly here (from {len(files)} files) -> .device/labeled-ids.txt")
EOF

echo "carried folder .device:"
ls -la .device/wheels .device/model-config .device/lib | sed 's/^/  /'
dev=$(du -sb .device | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((dev + tree))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo ".device: $(mib "$dev"); working tree that travels: $(mib "$tree"); together: $(mib "$total") (limit 64 MiB)"
[ "$dev" -le $((25 * 1048576)) ] || { echo "FAIL: .device is over 25 MiB" >&2; exit 1; }
[ "$total" -le $((64 * 1048576)) ] || { echo "FAIL: over the 64 MiB a device call can carry" >&2; exit 1; }
echo "OK: carry .device (one path) in the run call; see benchmarks/device/README.md"

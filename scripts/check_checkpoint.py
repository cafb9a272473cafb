"""Load a taskgrad model with the safetensors package (numpy) and check its
tensors' names and shapes against the architecture in its own metadata.

    python3 scripts/check_checkpoint.py runs/penguins/model.safetensors
"""
import json
import sys

from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()
assert meta["format"] == "taskgrad-1", meta.get("format")
model = json.loads(meta["model"])
net = model["net"]

expected = {}
width = net["inputs"]
for i, h in enumerate(net["trunk"]):
    expected[f"trunk.{i}.weight"] = (width, h)
    expected[f"trunk.{i}.bias"] = (h,)
    width = h
for name, out in zip(net["head_names"], net["outputs"]):
    w = width
    for j, h in enumerate(net["tower"]):
        expected[f"head.{name}.tower.{j}.weight"] = (w, h)
        expected[f"head.{name}.tower.{j}.bias"] = (h,)
        w = h
    expected[f"head.{name}.out.weight"] = (w, out)
    expected[f"head.{name}.out.bias"] = (out,)

own = {k: v for k, v in tensors.items() if not k.startswith("weighting.")}
missing = sorted(set(expected) - set(own))
extra = sorted(set(own) - set(expected))
wrong = sorted(k for k in expected if k in own and tuple(own[k].shape) != expected[k])
assert not missing and not extra and not wrong, (missing, extra, wrong)
assert all(str(v.dtype) == "float32" for v in tensors.values())
inputs = [c["name"] for c in model["schema"]["inputs"]]
tasks = [t["name"] for t in model["schema"]["tasks"]]
print(f"ok: {len(tensors)} float32 tensors with the documented names and shapes; "
      f"inputs {inputs}; tasks {tasks}; taskgrad {meta['taskgrad_version']}")

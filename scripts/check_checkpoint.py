"""Load a taskgrad model with the safetensors package (numpy) and check its
tensors' names and shapes against the architecture in its own metadata:
trunks and towers of widths or of layer lists, embeddings, and mixtures of
experts (omoe, mmoe, cgc, ple; one-layer or layer-list experts).

    python3 scripts/check_checkpoint.py runs/penguins/model.safetensors

The names follow src/nn (Stack::build, MultiTaskNet::new, Moe::new); this
script is their second, independent reading.
"""
import json
import sys

from safetensors import safe_open
from safetensors.numpy import load_file

ACTIVATIONS = {"relu", "gelu", "tanh"}


def layers_of(widths, listed, activation):
    """A layer list: the listed layers, or each width as linear and the activation."""
    if listed:
        return listed
    out = []
    for w in widths:
        out += [f"linear:{w}", activation]
    return out


def stack(expected, prefix, layers, width):
    """Add a layer list's parameters (named <prefix>.<k>, k counting the
    layers that have any; linear then relu are one layer) and return its
    output width."""
    k, i = 0, 0
    while i < len(layers):
        name, _, arg = layers[i].partition(":")
        if name == "linear":
            n = int(arg)
            expected[f"{prefix}.{k}.weight"] = (width, n)
            expected[f"{prefix}.{k}.bias"] = (n,)
            width, k = n, k + 1
            if i + 1 < len(layers) and layers[i + 1] == "relu":
                i += 1
        elif name == "layernorm":
            expected[f"{prefix}.{k}.gamma"] = (width,)
            expected[f"{prefix}.{k}.beta"] = (width,)
            k += 1
        elif name not in ACTIVATIONS and name != "dropout":
            sys.exit(f"unknown layer {layers[i]!r} (a layer registered by a program of its own?)")
        i += 1
    return width


def experts(expected, name, fan_in, n, hidden, listed):
    """A group of n experts: one fused linear layer, or a layer list each."""
    if n == 0:
        return hidden
    if not listed:
        expected[f"{name}.weight"] = (fan_in, n * hidden)
        expected[f"{name}.bias"] = (n * hidden,)
        return hidden
    for e in range(n):
        hidden = stack(expected, f"{name}.e{e}", listed, fan_in)
    return hidden


def mixture(expected, arch, listed, activation, width, tasks):
    kind = arch["kind"]
    shared = arch.get("experts", arch.get("shared", 0))
    per_task = arch.get("per_task", 0)
    hidden = arch["expert_hidden"]
    levels = arch.get("levels", 1)
    if listed == [f"linear:{hidden}", activation]:
        listed = []  # the fused form
    h = hidden
    for l in range(levels):
        fan_in = width if l == 0 else h
        last = l + 1 == levels
        h = experts(expected, f"moe.{l}.shared", fan_in, shared, hidden, listed)
        for k in range(tasks):
            h = experts(expected, f"moe.{l}.task{k}", fan_in, per_task, h, listed)
        if kind == "omoe":
            expected[f"moe.{l}.gate.weight"] = (fan_in, shared)
            expected[f"moe.{l}.gate.bias"] = (shared,)
        else:
            if not last:
                n = shared + tasks * per_task
                expected[f"moe.{l}.shared_gate.weight"] = (fan_in, n)
                expected[f"moe.{l}.shared_gate.bias"] = (n,)
            for k in range(tasks):
                expected[f"moe.{l}.gate{k}.weight"] = (fan_in, shared + per_task)
                expected[f"moe.{l}.gate{k}.bias"] = (shared + per_task,)
    return h


def expected_shapes(net):
    expected = {}
    activation = net.get("activation", "relu")
    embeddings = net.get("embeddings", [])
    width = net["inputs"] - len(embeddings)
    for e in embeddings:
        expected[f"embed.{e['column']}"] = (e["levels"], e["dim"])
        width += e["dim"]
    arch = net.get("arch", {"kind": "shared"})
    tasks = len(net["head_names"])
    if arch["kind"] != "shared":
        width = mixture(expected, arch, net.get("expert_layers", []), activation, width, tasks)
    trunk = layers_of(net["trunk"], net.get("trunk_layers", []), activation)
    width = stack(expected, "trunk", trunk, width)
    tower = layers_of(net["tower"], net.get("tower_layers", []), activation)
    for name, out in zip(net["head_names"], net["outputs"]):
        w = stack(expected, f"head.{name}.tower", tower, width)
        expected[f"head.{name}.out.weight"] = (w, out)
        expected[f"head.{name}.out.bias"] = (out,)
    return expected


def main(path):
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] in ("taskgrad-1", "taskgrad-2"), meta.get("format")
    model = json.loads(meta["model"])
    expected = expected_shapes(model["net"])
    own = {k: v for k, v in tensors.items() if not k.startswith("weighting.")}
    missing = sorted(set(expected) - set(own))
    extra = sorted(set(own) - set(expected))
    wrong = sorted(k for k in expected if k in own and tuple(own[k].shape) != expected[k])
    assert not missing and not extra and not wrong, (missing, extra, wrong)
    assert all(str(v.dtype) == "float32" for v in tensors.values())
    inputs = [c["name"] for c in model["schema"]["inputs"]]
    tasks = [t["name"] for t in model["schema"]["tasks"]]
    arch = model["net"].get("arch", {"kind": "shared"})["kind"]
    print(f"ok: {len(tensors)} float32 tensors with the documented names and shapes; "
          f"architecture {arch}; inputs {inputs}; tasks {tasks}; taskgrad {meta['taskgrad_version']}")


if __name__ == "__main__":
    main(sys.argv[1])

"""Run an LM's linear layers through oneDNN on CPU (faster exact labeling on AMD CPUs).

PyTorch's x86 CPU build computes float32 `nn.Linear` with MKL's sgemm, which on AMD processors does
not always reach the speed of oneDNN (shipped inside the same torch build). On the 2-core AMD EPYC
this project is developed on (`python benchmarks/cpu_matmul.py --threads 1`), oneDNN ran the first
greedy steps of two chains 1.05-1.10x faster on a quiet machine and 1.68-1.71x faster with both
cores loaded, with the same deletions. The greedy labeler spends ~74% of its time in these products
(`python benchmarks/greedy_profile.py`), so this is where a CPU labeler gains.

Each `nn.Linear` becomes a `OneDNNLinear`: its weight pre-packed in oneDNN's layout, called through
oneDNN's dense-in/dense-out op, taking and returning ordinary tensors. The mathematics is unchanged;
only the float32 summation order differs, so results move by round-off (trajectories 2e-5 to 8e-5
nats apart in the benchmark, on objectives of about -80), the size of the differences between batch
sizes or devices.
"""
from __future__ import annotations

import warnings

import torch


def _mkldnn_utils():
    """torch.utils.mkldnn (not imported by `import torch`); its modules are TorchScript ones, whose
    decorators torch 2.13 marks deprecated at import: that warning is not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import torch.utils.mkldnn
    return torch.utils.mkldnn


def onednn_applicable(model: torch.nn.Module) -> bool:
    """True when oneDNN can take the model's linear layers: a torch with oneDNN, all weights float32 on CPU."""
    params = list(model.parameters())
    return (torch.backends.mkldnn.is_available() and bool(params)
            and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params))


class OneDNNLinear(torch.nn.Module):
    """`nn.Linear` with its weight pre-packed for oneDNN; takes and returns ordinary float32 tensors.

    Calls oneDNN's dense-in/dense-out linear (`torch.ops.mkldnn._linear_pointwise`, the op torch's
    own compiler emits for CPU linears), so no tensor is converted to and from oneDNN's layout per
    call as `torch.utils.mkldnn.MkldnnLinear` does: 5-15% faster on this CPU's layer shapes."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach().to_mkldnn())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def _has_pointwise() -> bool:
    return hasattr(torch.ops.mkldnn, "_linear_pointwise")


def use_onednn_linears(model: torch.nn.Module) -> int:
    """Replace every `nn.Linear` of `model` in place by its oneDNN version; returns how many were replaced.

    Raises ValueError when the model is not float32 on CPU (oneDNN's float32 path only)."""
    if not onednn_applicable(model):
        raise ValueError("oneDNN linears need a float32 model on CPU and a torch built with oneDNN")
    if isinstance(model, torch.nn.Linear):
        raise ValueError("use_onednn_linears needs a model that contains its linear layers, not a bare Linear")
    if not _has_pointwise():  # a torch without the dense-in/dense-out op: torch.utils.mkldnn's modules
        count = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
        _mkldnn_utils().to_mkldnn(model)
        return count
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, OneDNNLinear(child))
                count += 1
    return count


def uses_onednn(model: torch.nn.Module) -> bool:
    """True when `use_onednn_linears` has converted the model's linear layers."""
    kinds = (OneDNNLinear, _mkldnn_utils().MkldnnLinear)
    return any(isinstance(m, kinds) for m in model.modules())

#!/usr/bin/python3
"""Writes ops_golden.json: forward values and gradients of every siglite op, computed by PyTorch.

Run with Debian's python3 (python3-torch):  /usr/bin/python3 tests/reference/make_golden.py

Each case stores its inputs, the op's parameters, the output, a fixed cotangent of the output's
shape and PyTorch's gradient of sum(output * cotangent) with respect to every floating input.
Inputs are drawn in float64 from a generator seeded by the case name, so adding a case changes
no other case and re-running the script reproduces the file byte for byte.
"""
import json
import math
import os
import re
import zlib

import torch
import torch.nn.functional as F

FORMAT_VERSION = 1
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_golden.json")
DT = torch.float64
torch.set_num_threads(1)  # one thread: the same summation order on every run


class Rand:
    """Input makers drawing from one case's generator."""

    def __init__(self, name):
        self.g = torch.Generator().manual_seed(zlib.crc32(name.encode()))

    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g, dtype=DT) * scale

    def pos(self, *shape):
        """Positive values in [0.2, 2.2): for log, sqrt, rsqrt and fractional powers."""
        return torch.rand(shape, generator=self.g, dtype=DT) * 2 + 0.2

    def nonzero(self, *shape):
        """Magnitudes in [0.5, 1.5) with random signs: for divisors."""
        mag = torch.rand(shape, generator=self.g, dtype=DT) + 0.5
        sign = torch.randint(0, 2, shape, generator=self.g) * 2 - 1
        return mag * sign


def inp(name, values, permute=None):
    """An input; the op sees it permuted by `permute` (a strided view) when given."""
    t = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=DT)
    return {"name": name, "t": t, "permute": permute}


def encode(t):
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "values": [int(v) for v in t.flatten().tolist()]}
    vals = t.detach().contiguous().flatten().tolist()
    assert all(math.isfinite(v) for v in vals), "JSON holds finite values only"
    return {"shape": list(t.shape), "values": [float(v) for v in vals]}


CASES = []


def case(name, op, fn, make_inputs, **params):
    """Runs fn(*inputs, **params) in PyTorch and records the case."""
    assert all(c["name"] != name for c in CASES), "duplicate case " + name
    r = Rand(name)
    inputs = make_inputs(r)
    leaves, args = [], []
    for spec in inputs:
        leaf = spec["t"].clone()
        if leaf.is_floating_point():
            leaf.requires_grad_(True)
        leaves.append(leaf)
        args.append(leaf.permute(spec["permute"]) if spec["permute"] is not None else leaf)
    out = fn(*args, **params)
    cot = torch.randn(out.shape, generator=r.g, dtype=DT)
    out.backward(cot)
    record = {"name": name, "op": op, "params": params, "inputs": [], "output": encode(out),
              "cotangent": encode(cot), "grads": {}}
    for spec, leaf in zip(inputs, leaves):
        entry = {"name": spec["name"], "dtype": "float64" if leaf.is_floating_point() else "int64"}
        if spec["permute"] is not None:
            entry["permute"] = spec["permute"]
        entry.update(encode(leaf))
        record["inputs"].append(entry)
        if leaf.is_floating_point():
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            record["grads"][spec["name"]] = encode(grad)
    CASES.append(record)


def all_axes(x, axes):
    """Empty `axes` means every axis (siglite's convention)."""
    return list(axes) if axes else list(range(x.dim()))


# ---- elementwise: binary with broadcasting ----
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "maximum": torch.maximum}
for op, f in BINARY.items():
    other = (lambda r, *s: r.nonzero(*s)) if op == "div" else (lambda r, *s: r.randn(*s))
    case(f"{op}_3d_bcast_2d", op, lambda a, b, f=f: f(a, b),
         lambda r, o=other: [inp("a", r.randn(2, 3, 4)), inp("b", o(r, 3, 1))])
    case(f"{op}_1d_bcast_3d", op, lambda a, b, f=f: f(a, b),
         lambda r, o=other: [inp("a", r.randn(4)), inp("b", o(r, 2, 1, 4))])
    case(f"{op}_both_bcast", op, lambda a, b, f=f: f(a, b),
         lambda r, o=other: [inp("a", r.randn(2, 1, 4)), inp("b", o(r, 3, 1))])
    case(f"{op}_transposed_operand", op, lambda a, b, f=f: f(a, b),
         lambda r, o=other: [inp("a", r.randn(3, 4)), inp("b", o(r, 4, 3), permute=[1, 0])])
    case(f"{op}_0d_operand", op, lambda a, b, f=f: f(a, b),
         lambda r, o=other: [inp("a", r.randn(2, 3)), inp("b", o(r))])

# ---- elementwise: scalar forms (siglite's x + s, x - s, s - x, x * s, x / s, s / x) ----
case("add_scalar", "add_scalar", lambda x, scalar: x + scalar, lambda r: [inp("x", r.randn(2, 3))], scalar=2.5)
case("sub_scalar", "sub_scalar", lambda x, scalar: x - scalar, lambda r: [inp("x", r.randn(2, 3))], scalar=1.25)
case("rsub_scalar", "rsub_scalar", lambda x, scalar: scalar - x, lambda r: [inp("x", r.randn(2, 3))], scalar=3.0)
case("mul_scalar", "mul_scalar", lambda x, scalar: x * scalar, lambda r: [inp("x", r.randn(2, 3))], scalar=-1.5)
case("div_scalar", "div_scalar", lambda x, scalar: x / scalar, lambda r: [inp("x", r.randn(2, 3))], scalar=0.3)
case("rdiv_scalar", "rdiv_scalar", lambda x, scalar: scalar / x, lambda r: [inp("x", r.nonzero(2, 3))], scalar=2.0)

# ---- elementwise: unary ----
# Values up to |x| = 1e4 check the stable forms; all are exact in float too.
EXTREME = [-1e4, -1000.0, -50.0, -30.0, -5.0, -1.0, -0.25, 0.0, 0.5, 2.0, 10.0, 30.0, 50.0, 1000.0, 1e4]
case("neg", "neg", torch.neg, lambda r: [inp("x", r.randn(2, 3))])
case("exp", "exp", torch.exp, lambda r: [inp("x", r.randn(2, 3))])
case("exp_transposed", "exp", torch.exp, lambda r: [inp("x", r.randn(4, 3), permute=[1, 0])])
case("log", "log", torch.log, lambda r: [inp("x", r.pos(2, 3))])
case("sqrt", "sqrt", torch.sqrt, lambda r: [inp("x", r.pos(2, 3))])
case("rsqrt", "rsqrt", torch.rsqrt, lambda r: [inp("x", r.pos(2, 3))])
case("pow_2", "pow", torch.pow, lambda r: [inp("x", r.randn(2, 3))], exponent=2.0)
case("pow_3_negative_base", "pow", torch.pow, lambda r: [inp("x", r.randn(2, 3))], exponent=3.0)
case("pow_0.5", "pow", torch.pow, lambda r: [inp("x", r.pos(2, 3))], exponent=0.5)
case("pow_-1.5", "pow", torch.pow, lambda r: [inp("x", r.pos(2, 3))], exponent=-1.5)
case("abs", "abs", torch.abs, lambda r: [inp("x", torch.cat([r.randn(5), torch.zeros(1, dtype=DT)]))])
case("sin", "sin", torch.sin, lambda r: [inp("x", torch.cat([r.randn(6, scale=3), torch.tensor([0.0, 40.0])]))])
case("cos", "cos", torch.cos, lambda r: [inp("x", torch.cat([r.randn(6, scale=3), torch.tensor([0.0, -40.0])]))])
case("tanh", "tanh", torch.tanh, lambda r: [inp("x", torch.cat([r.randn(6, scale=2), torch.tensor([-20.0, 20.0])]))])
case("sigmoid", "sigmoid", torch.sigmoid, lambda r: [inp("x", torch.cat([r.randn(5, scale=3), torch.tensor(EXTREME)]))])
case("log_sigmoid", "log_sigmoid", F.logsigmoid,
     lambda r: [inp("x", torch.cat([r.randn(5, scale=3), torch.tensor(EXTREME)]))])
# torch's softplus returns x itself above x = 20; EXTREME skips (20, 30) where that differs from
# log1p(exp(x)) by more than 1e-13.
case("softplus", "softplus", F.softplus, lambda r: [inp("x", torch.cat([r.randn(5, scale=3), torch.tensor(EXTREME)]))])
case("relu", "relu", torch.relu, lambda r: [inp("x", torch.cat([r.randn(5), torch.zeros(1, dtype=DT)]))])
case("gelu_tanh", "gelu", lambda x, approximate: F.gelu(x, approximate=approximate),
     lambda r: [inp("x", torch.cat([r.randn(6, scale=2), torch.tensor([-6.0, 0.0, 6.0])]))], approximate="tanh")
case("gelu_exact", "gelu", lambda x, approximate: F.gelu(x, approximate=approximate),
     lambda r: [inp("x", torch.cat([r.randn(6, scale=2), torch.tensor([-6.0, 0.0, 6.0])]))], approximate="none")

# ---- reductions ----
REDUCE = {
    "sum": lambda x, axes, keepdim: x.sum(dim=all_axes(x, axes), keepdim=keepdim),
    "mean": lambda x, axes, keepdim: x.mean(dim=all_axes(x, axes), keepdim=keepdim),
    # amax shares the gradient equally among tied maxima, as siglite does.
    "max": lambda x, axes, keepdim: x.amax(dim=all_axes(x, axes), keepdim=keepdim),
}
for op, f in REDUCE.items():
    case(f"{op}_axis1", op, f, lambda r: [inp("x", r.randn(2, 3, 4))], axes=[1], keepdim=False)
    case(f"{op}_axis0_keepdim", op, f, lambda r: [inp("x", r.randn(3, 4))], axes=[0], keepdim=True)
    case(f"{op}_last_keepdim", op, f, lambda r: [inp("x", r.randn(2, 3, 4))], axes=[-1], keepdim=True)
    case(f"{op}_axes02_keepdim", op, f, lambda r: [inp("x", r.randn(2, 3, 4))], axes=[0, 2], keepdim=True)
    case(f"{op}_axes_-1_0", op, f, lambda r: [inp("x", r.randn(2, 3, 4))], axes=[-1, 0], keepdim=False)
    case(f"{op}_all", op, f, lambda r: [inp("x", r.randn(2, 3, 4))], axes=[], keepdim=False)
    case(f"{op}_all_keepdim", op, f, lambda r: [inp("x", r.randn(2, 3))], axes=[], keepdim=True)
    case(f"{op}_permuted_axis1", op, f, lambda r: [inp("x", r.randn(4, 2, 3), permute=[1, 2, 0])], axes=[1],
         keepdim=False)
case("max_ties_last", "max", REDUCE["max"], lambda r: [inp("x", [[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5]])],
     axes=[-1], keepdim=False)
case("max_ties_all", "max", REDUCE["max"], lambda r: [inp("x", [[1.0, 3.0, -2.0], [3.0, 0.5, 3.0]])], axes=[],
     keepdim=False)
case("sum_to_3d_to_2d", "sum_to", lambda x, shape: x.sum_to_size(shape), lambda r: [inp("x", r.randn(2, 3, 4))],
     shape=[3, 1])
case("sum_to_keep_last", "sum_to", lambda x, shape: x.sum_to_size(shape), lambda r: [inp("x", r.randn(2, 3, 4))],
     shape=[1, 4])

# ---- matmul (permuted inputs are strided views: siglite passes transposes to the GEMM as is) ----
MM = [
    ("2d", (3, 4), None, (4, 5), None),
    ("2d_ta", (4, 3), [1, 0], (4, 5), None),
    ("2d_tb", (3, 4), None, (5, 4), [1, 0]),
    ("2d_ta_tb", (4, 3), [1, 0], (5, 4), [1, 0]),
    ("row_vector_ta", (4, 1), [1, 0], (4, 3), None),
    ("col_vector_tb", (3, 4), None, (1, 4), [1, 0]),
    ("outer_k1", (3, 1), None, (1, 4), None),
    ("3d", (2, 3, 4), None, (2, 4, 5), None),
    ("3d_2d", (2, 3, 4), None, (4, 5), None),
    ("3d_2d_tb", (2, 3, 4), None, (5, 4), [1, 0]),
    ("2d_3d", (3, 4), None, (2, 4, 5), None),
    ("3d_ta_tb", (2, 4, 3), [0, 2, 1], (2, 5, 4), [0, 2, 1]),
    ("3d_batch_permuted", (3, 2, 4), [1, 0, 2], (2, 4, 5), None),
    ("4d_bcast", (2, 1, 3, 4), None, (3, 4, 5), None),
    ("4d_bcast_ta_tb", (2, 1, 4, 3), [0, 1, 3, 2], (3, 5, 4), [0, 2, 1]),
    ("4d_heads_tb", (2, 2, 3, 4), None, (2, 2, 5, 4), [0, 1, 3, 2]),
    ("4d_bcast_both", (2, 1, 3, 4), None, (1, 3, 4, 2), None),
]
for name, sa, pa, sb, pb in MM:
    case(f"matmul_{name}", "matmul", torch.matmul,
         lambda r, sa=sa, pa=pa, sb=sb, pb=pb: [inp("a", r.randn(*sa), pa), inp("b", r.randn(*sb), pb)])

# ---- softmax and log_softmax ----
LARGE_ROWS = [[1000.0, 998.5, -1000.0, 1001.25], [-1e4, 0.0, 1e4, 9999.0], [3.0, -1e9, 2.0, -1e9]]
for op, f in {"softmax": torch.softmax, "log_softmax": torch.log_softmax}.items():
    case(f"{op}_last", op, lambda x, axis, f=f: f(x, axis), lambda r: [inp("x", r.randn(2, 3, 5))], axis=-1)
    case(f"{op}_middle", op, lambda x, axis, f=f: f(x, axis), lambda r: [inp("x", r.randn(2, 3, 4))], axis=1)
    case(f"{op}_first", op, lambda x, axis, f=f: f(x, axis), lambda r: [inp("x", r.randn(3, 4))], axis=0)
    case(f"{op}_large_rows", op, lambda x, axis, f=f: f(x, axis), lambda r: [inp("x", LARGE_ROWS)], axis=-1)
    case(f"{op}_large_columns", op, lambda x, axis, f=f: f(x, axis),
         lambda r: [inp("x", LARGE_ROWS, permute=[1, 0])], axis=0)
    case(f"{op}_transposed_last", op, lambda x, axis, f=f: f(x, axis),
         lambda r: [inp("x", r.randn(4, 3), permute=[1, 0])], axis=-1)

# ---- layer_norm and l2_normalize ----
def layer_norm(x, weight=None, bias=None, *, eps):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


case("layer_norm_affine", "layer_norm", layer_norm,
     lambda r: [inp("x", r.randn(2, 3, 8)), inp("weight", r.randn(8)), inp("bias", r.randn(8))], eps=1e-5)
case("layer_norm_offset_eps1e-3", "layer_norm", layer_norm,
     lambda r: [inp("x", r.randn(4, 6) + 100.0), inp("weight", r.randn(6)), inp("bias", r.randn(6))], eps=1e-3)
case("layer_norm_plain", "layer_norm", layer_norm, lambda r: [inp("x", r.randn(3, 5))], eps=1e-5)
case("layer_norm_weight_only", "layer_norm", layer_norm, lambda r: [inp("x", r.randn(3, 5)), inp("weight", r.randn(5))],
     eps=1e-6)
case("layer_norm_transposed", "layer_norm", layer_norm,
     lambda r: [inp("x", r.randn(6, 4), permute=[1, 0]), inp("weight", r.randn(6)), inp("bias", r.randn(6))], eps=1e-5)

L2 = lambda x, axis, eps: F.normalize(x, p=2.0, dim=axis, eps=eps)  # noqa: E731
case("l2_normalize_last", "l2_normalize", L2, lambda r: [inp("x", r.randn(3, 5))], axis=-1, eps=1e-12)
# The last row's norm (about 2e-13) is below eps: it is divided by eps and so is its gradient.
case("l2_normalize_tiny_row", "l2_normalize", L2,
     lambda r: [inp("x", torch.cat([r.randn(2, 4), r.randn(1, 4) * 1e-13]))], axis=-1, eps=1e-12)
case("l2_normalize_middle", "l2_normalize", L2, lambda r: [inp("x", r.randn(2, 4, 3))], axis=1, eps=1e-6)

# ---- concat, stack, index_select, embedding ----
case("concat_axis1", "concat", lambda *xs, axis: torch.cat(xs, axis),
     lambda r: [inp("x0", r.randn(2, 1, 3)), inp("x1", r.randn(2, 4, 3)), inp("x2", r.randn(2, 2, 3))], axis=1)
case("concat_axis0", "concat", lambda *xs, axis: torch.cat(xs, axis),
     lambda r: [inp("x0", r.randn(1, 3)), inp("x1", r.randn(2, 3))], axis=0)
case("concat_last_transposed", "concat", lambda *xs, axis: torch.cat(xs, axis),
     lambda r: [inp("x0", r.randn(3, 2), permute=[1, 0]), inp("x1", r.randn(2, 4))], axis=-1)
for axis in (0, 1, -1):
    case(f"stack_axis{axis}", "stack", lambda *xs, axis: torch.stack(xs, axis),
         lambda r: [inp("x0", r.randn(2, 3)), inp("x1", r.randn(2, 3)), inp("x2", r.randn(2, 3))], axis=axis)
case("index_select_axis1_repeats", "index_select", lambda x, index, axis: torch.index_select(x, axis, index),
     lambda r: [inp("x", r.randn(3, 5, 2)), inp("index", torch.tensor([4, 0, 4, 2, 0, 0]))], axis=1)
case("index_select_axis0", "index_select", lambda x, index, axis: torch.index_select(x, axis, index),
     lambda r: [inp("x", r.randn(4, 3)), inp("index", torch.tensor([3, 3, 1]))], axis=0)
case("index_select_last", "index_select", lambda x, index, axis: torch.index_select(x, axis, index),
     lambda r: [inp("x", r.randn(2, 4)), inp("index", torch.tensor([1, 3]))], axis=-1)
case("embedding_2d_ids", "embedding", lambda weight, ids: F.embedding(ids, weight),
     lambda r: [inp("weight", r.randn(6, 4)), inp("ids", torch.tensor([[1, 3, 1], [5, 0, 3]]))])
case("embedding_1d_ids", "embedding", lambda weight, ids: F.embedding(ids, weight),
     lambda r: [inp("weight", r.randn(5, 3)), inp("ids", torch.tensor([2, 2, 4, 0]))])

# ---- patchify ----
def patchify(x, patch):
    """[N, C, H, W] -> [N, (H/P)*(W/P), C*P*P], each patch flattened as (c, ky, kx)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // patch) * (w // patch), c * patch * patch)


def patch_embed(images, weight, bias, patch):
    """The ViT patch embedding as torch computes it: a Conv2d with stride = kernel = P."""
    return F.conv2d(images, weight, bias, stride=patch).flatten(2).transpose(1, 2)


case("patchify_p2", "patchify", patchify, lambda r: [inp("images", r.randn(2, 3, 4, 6))], patch=2)
case("patchify_p3_tall", "patchify", patchify, lambda r: [inp("images", r.randn(1, 2, 6, 3))], patch=3)
case("patchify_unfold_p2", "patchify", lambda x, patch: F.unfold(x, patch, stride=patch).transpose(1, 2),
     lambda r: [inp("images", r.randn(1, 2, 4, 4))], patch=2)
case("patch_embed_conv2d", "patch_embed", patch_embed,
     lambda r: [inp("images", r.randn(2, 3, 4, 6)), inp("weight", r.randn(5, 3, 2, 2)), inp("bias", r.randn(5))],
     patch=2)

# ---- scaled dot-product attention, written out (torch 1.13 has no F.scaled_dot_product_attention) ----
def attention(q, k, v, mask=None, *, scale):
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-2, -1) * s
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, -1) @ v


def causal_mask(lq, lk):
    """0 where key j <= query i + (lk - lq), -1e9 elsewhere."""
    i = torch.arange(lq).unsqueeze(1) + (lk - lq)
    j = torch.arange(lk).unsqueeze(0)
    return torch.where(j <= i, 0.0, -1e9).to(DT)


def qkv(r, b=2, h=2, lq=3, lk=5, d=4, dv=3):
    return [inp("q", r.randn(b, h, lq, d)), inp("k", r.randn(b, h, lk, d)), inp("v", r.randn(b, h, lk, dv))]


case("sdpa_default_scale", "scaled_dot_product_attention", attention, qkv, scale=None)
case("sdpa_explicit_scale", "scaled_dot_product_attention", attention, qkv, scale=0.3)
case("sdpa_causal_mask", "scaled_dot_product_attention", attention,
     lambda r: qkv(r) + [inp("mask", causal_mask(3, 5).reshape(1, 1, 3, 5) + r.randn(1, 1, 3, 5, scale=0.1))],
     scale=None)
case("sdpa_padding_mask_scale", "scaled_dot_product_attention", attention,
     lambda r: qkv(r) + [inp("mask", torch.tensor([0.0, 0.0, 0.0, -1e9, -1e9, 0.0, 0.0, 0.0, 0.0, -1e9],
                                                  dtype=DT).reshape(2, 1, 1, 5) + r.randn(2, 1, 1, 5, scale=0.1))],
     scale=0.7)
case("sdpa_full_mask", "scaled_dot_product_attention", attention,
     lambda r: qkv(r, lq=4, lk=4) + [inp("mask", r.randn(2, 2, 4, 4))], scale=1.0)
case("sdpa_transposed_k", "scaled_dot_product_attention", attention,
     lambda r: [inp("q", r.randn(2, 2, 3, 4)), inp("k", r.randn(2, 5, 2, 4), permute=[0, 2, 1, 3]),
                inp("v", r.randn(2, 2, 5, 3))], scale=None)

# ---- multi-head attention on [B, L, heads * d]: heads split, attended and merged ----
def multi_head_attention(q, k, v, *, heads, scale):
    def split(x):
        b, l, w = x.shape
        return x.reshape(b, l, heads, w // heads).transpose(1, 2)
    o = attention(split(q), split(k), split(v), scale=scale)
    b, h, l, dv = o.shape
    return o.transpose(1, 2).reshape(b, l, h * dv)


case("mha_3_heads", "multi_head_attention", multi_head_attention,
     lambda r: [inp("q", r.randn(2, 3, 12)), inp("k", r.randn(2, 5, 12)), inp("v", r.randn(2, 5, 9))],
     heads=3, scale=None)
case("mha_one_query_scale", "multi_head_attention", multi_head_attention,
     lambda r: [inp("q", r.randn(2, 1, 8)), inp("k", r.randn(2, 4, 8)), inp("v", r.randn(2, 4, 8))],
     heads=2, scale=0.5)
case("mha_strided_k", "multi_head_attention", multi_head_attention,
     lambda r: [inp("q", r.randn(2, 3, 8)), inp("k", r.randn(3, 2, 8), permute=[1, 0, 2]),
                inp("v", r.randn(2, 3, 4))], heads=4, scale=None)

case("mha_packed", "multi_head_attention_packed",
     lambda qkv, heads, scale: multi_head_attention(*qkv.chunk(3, -1), heads=heads, scale=scale),
     lambda r: [inp("qkv", r.randn(2, 4, 18))], heads=3, scale=None)
case("mha_packed_strided_scale", "multi_head_attention_packed",
     lambda qkv, heads, scale: multi_head_attention(*qkv.chunk(3, -1), heads=heads, scale=scale),
     lambda r: [inp("qkv", r.randn(3, 2, 12), permute=[1, 0, 2])], heads=2, scale=0.7)
case("mha_packed_at_last", "multi_head_attention_packed_at",
     lambda qkv, at, heads, scale: multi_head_attention(*qkv.chunk(3, -1), heads=heads, scale=scale)[:, at:at + 1],
     lambda r: [inp("qkv", r.randn(2, 4, 18))], at=3, heads=3, scale=None)
case("mha_packed_at_strided_scale", "multi_head_attention_packed_at",
     lambda qkv, at, heads, scale: multi_head_attention(*qkv.chunk(3, -1), heads=heads, scale=scale)[:, at:at + 1],
     lambda r: [inp("qkv", r.randn(3, 2, 12), permute=[1, 0, 2])], at=1, heads=2, scale=0.7)

# ---- linear: x @ weight^T + bias ----
case("linear_bias", "linear", F.linear,
     lambda r: [inp("x", r.randn(2, 3, 4)), inp("weight", r.randn(5, 4)), inp("bias", r.randn(5))])
case("linear_no_bias", "linear", F.linear, lambda r: [inp("x", r.randn(6, 4)), inp("weight", r.randn(3, 4))])
case("linear_transposed_x", "linear", F.linear,
     lambda r: [inp("x", r.randn(4, 3), permute=[1, 0]), inp("weight", r.randn(2, 4)), inp("bias", r.randn(2))])

# ---- linear_gelu: gelu(x @ weight^T + bias), one op in siglite ----
def linear_gelu(x, weight, bias=None, *, approximate):
    return F.gelu(F.linear(x, weight, bias), approximate=approximate)


case("linear_gelu_tanh", "linear_gelu", linear_gelu,
     lambda r: [inp("x", r.randn(2, 3, 4)), inp("weight", r.randn(5, 4)), inp("bias", r.randn(5))],
     approximate="tanh")
case("linear_gelu_exact_no_bias", "linear_gelu", linear_gelu,
     lambda r: [inp("x", r.randn(6, 4)), inp("weight", r.randn(3, 4))], approximate="none")

# ---- views ----
def slice_axis(x, axis, start, end, step):
    index = [slice(None)] * x.dim()
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


case("reshape_infer", "reshape", lambda x, shape: x.reshape(shape), lambda r: [inp("x", r.randn(2, 3, 4))],
     shape=[4, -1])
case("reshape_of_transposed", "reshape", lambda x, shape: x.reshape(shape),
     lambda r: [inp("x", r.randn(4, 3), permute=[1, 0])], shape=[2, 6])
case("transpose_0_2", "transpose", lambda x, dim0, dim1: x.transpose(dim0, dim1),
     lambda r: [inp("x", r.randn(2, 3, 4))], dim0=0, dim1=2)
case("transpose_last_two", "transpose", lambda x, dim0, dim1: x.transpose(dim0, dim1),
     lambda r: [inp("x", r.randn(2, 3, 4))], dim0=-2, dim1=-1)
case("permute_201", "permute", lambda x, dims: x.permute(dims), lambda r: [inp("x", r.randn(2, 3, 4))], dims=[2, 0, 1])
case("slice_step2", "slice", slice_axis, lambda r: [inp("x", r.randn(2, 7, 3))], axis=1, start=1, end=6, step=2)
case("slice_negative_start", "slice", slice_axis, lambda r: [inp("x", r.randn(5, 2))], axis=0, start=-3, end=100,
     step=1)
case("slice_last_step3", "slice", slice_axis, lambda r: [inp("x", r.randn(2, 3, 5))], axis=-1, start=0, end=5, step=3)
case("slice_of_transposed", "slice", slice_axis, lambda r: [inp("x", r.randn(6, 2), permute=[1, 0])], axis=1, start=1,
     end=-1, step=2)
case("expand_new_axes", "expand", lambda x, shape: x.expand(shape), lambda r: [inp("x", r.randn(3, 1))],
     shape=[2, 3, 4])
case("expand_keep_extent", "expand", lambda x, shape: x.expand(shape), lambda r: [inp("x", r.randn(2, 1, 4))],
     shape=[2, 3, -1])
case("unsqueeze_1", "unsqueeze", lambda x, axis: x.unsqueeze(axis), lambda r: [inp("x", r.randn(2, 3))], axis=1)
case("squeeze_1", "squeeze", lambda x, axis: x.squeeze(axis), lambda r: [inp("x", r.randn(2, 1, 3))], axis=1)
case("contiguous_of_transposed", "contiguous", lambda x: x.contiguous(),
     lambda r: [inp("x", r.randn(4, 3), permute=[1, 0])])


def dump(doc):
    """JSON with one line per tensor: arrays of numbers are written on one line."""
    text = json.dumps(doc, indent=1, allow_nan=False)
    return re.sub(r"\[[^\[\]{}\"]*\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(0)[1:-1].split(",")) + "]",
                  text) + "\n"


if __name__ == "__main__":
    doc = {"format_version": FORMAT_VERSION, "torch_version": torch.__version__,
           "generator": "tests/reference/make_golden.py", "cases": CASES}
    with open(OUT, "w") as f:
        f.write(dump(doc))
    print(f"wrote {len(CASES)} cases to {OUT} ({os.path.getsize(OUT)} bytes)")

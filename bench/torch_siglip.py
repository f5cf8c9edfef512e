#!/usr/bin/env python3
"""The PyTorch side of siglite-bench: the same modes, the same work, one JSON line with the same keys.

  torch_siglip.py train --init DIR [--steps 5] [--warmup 2] [--threads N]
      SigLIP training steps on the batch in DIR/batch.safetensors, from the weights in DIR (written by
      `siglite-bench train --save-init DIR`): forward, the paper's sigmoid loss, backward, AdamW
      (lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 1e-4 on the parameters siglite's
      optim::split_decay decays, 0 on the rest). pairs/s of the median step, the losses.
  torch_siglip.py infer --init DIR [--steps 5] [--warmup 1]
      the image tower on DIR's pixel_values without a graph (torch.no_grad), L2-normalised embeddings
      as siglite's image_embeddings: images/s of the median call.
  torch_siglip.py loss --n 4096 --d 768 [--steps 3]
      the plain sigmoid loss (n x n logits, as Hugging Face writes it) forward + backward on random unit
      embeddings, and its peak memory beyond the inputs (resident set, see below).
Common: --threads N (torch.set_num_threads), --seed N, --model auto|hf|plain, --device cpu|cuda (default cpu),
--precision fp32|tf32|bf16 (default fp32).

--device cuda runs the model, the batch and the embeddings on the GPU (torch.cuda.synchronize() before each timed
region's start and end). --precision: fp32 turns TF32 off for matmuls and cuDNN convolutions alike
(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 False: float32 products throughout);
tf32 turns both on; bf16 is the usual mixed precision: torch.autocast("cuda", dtype=torch.bfloat16) around the
forward pass and the loss, float32 weights, gradients and AdamW state (no gradient scaler: bfloat16 has float32's
exponent range). bf16 needs --device cuda; on the CPU fp32 and tf32 are the same float32 products. On the GPU every
mode also reports peak_device_mib: torch.cuda.max_memory_allocated() over the timed steps, reset before them (loss:
the peak beyond the inputs, which is then also its peak_beyond_inputs_mib), and the model modes device_gemm_gflops
(torch.mm on a 4096^3 product on the GPU in the run's precision, best of 5) instead of gemm_gflops. Every line
carries "device", "precision", "torch_version" and "gpu_name" (null on the CPU).

The model is Hugging Face transformers' SiglipModel (--model hf; --model auto, the default, takes it when
transformers imports), loaded with from_pretrained(DIR). --model plain is a
plain-PyTorch copy of HF's SiglipModel with the same module and parameter names and the same arithmetic (no
transformers needed). Both load strictly: every tensor, nothing left over, the same shapes. safetensors files
are read with plain Python (Debian's python3 has no safetensors package).

Every mode reports peak_rss_mib (resource.getrusage: the process's peak resident set, as siglite-bench), and the
model modes rss_after_load_mib and gemm_gflops (torch.mm on a 1024^3 product after the timed steps, best of 5:
the rate of the BLAS this torch does its GEMMs in, as siglite-bench's sgemm_gflops is oneDNN's). Runs with
Debian's python3 and its torch 1.13, and with newer PyTorch.
"""
import argparse
import contextlib
import json
import math
import os
import re
import resource
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    """{name: tensor} from a safetensors file, with plain Python (no safetensors package)."""
    out = {}
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            buf = bytearray(f.read(end - begin))
            dtype = DTYPES[info["dtype"]]
            t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            out[name] = t.reshape(info["shape"])
    return out


def load_into(model, path):
    """Copies every tensor of a safetensors file into the model's state dict entry of that name, one tensor in
    memory at a time (the process's peak RSS stays that of the model), strict as load_state_dict(strict=True):
    every entry loaded, nothing left over, shapes equal."""
    state = model.state_dict()
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        problems = [f"missing {k}" for k in state if k not in header]
        problems += [f"unexpected {k}" for k in header if k not in state]
        problems += [f"{k}: shape {info['shape']} for {list(state[k].shape)}" for k, info in header.items()
                     if k in state and list(state[k].shape) != info["shape"]]
        if problems:
            raise SystemExit(f"torch_siglip.py: {path} does not fit the model: " + "; ".join(problems))
        base = 8 + header_len
        with torch.no_grad():
            for name, info in header.items():
                begin, end = info["data_offsets"]
                f.seek(base + begin)
                buf = bytearray(f.read(end - begin))
                if buf:
                    state[name].copy_(torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]))


def rss_mib(field="VmRSS"):
    """VmRSS (now) or VmHWM (peak since start or since reset_peak_rss) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss():
    """Resets VmHWM to the current resident set (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux


def blas_library():
    """The BLAS shared object this process mapped (torch's float GEMMs go there), or ''."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                base = os.path.basename(path)
                if "blas" in base or "mkl" in base:
                    return path
    except OSError:
        pass
    m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return "linked into torch (BLAS_INFO=" + m.group(1) + ")" if m else ""


def sync(a):
    """Waits for the GPU's queued work (nothing on the CPU): timed regions start and end with it."""
    if a.device == "cuda":
        torch.cuda.synchronize()


def set_precision(a):
    """The float32 matmul mode of --precision (module doc); on the CPU these flags change nothing."""
    if a.device == "cuda":
        tf32 = a.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(a):
    """The forward pass's (and the loss's) context: bfloat16 autocast for --precision bf16, else nothing."""
    if a.precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reset_peak_device(a):
    if a.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_device_mib():
    return torch.cuda.max_memory_allocated() / 2**20


def device_gemm_gflops(a, n=4096):
    """GFLOP/s of torch.mm on an n x n by n x n product on the GPU in the run's precision (bfloat16 operands for
    bf16), best of 5 after one, each synchronised: the same-run figure siglite-bench reports as device_gemm_gflops."""
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    x = torch.full((n, n), 0.5, device="cuda", dtype=dtype)
    y = torch.full((n, n), 0.25, device="cuda", dtype=dtype)
    c = torch.empty(n, n, device="cuda", dtype=dtype)
    torch.mm(x, y, out=c)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(x, y, out=c)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def gemm_figures(a):
    """The GEMM library's rate beside a model mode's figures: torch.mm on the CPU (gemm_gflops) or on the GPU
    (device_gemm_gflops)."""
    return {"device_gemm_gflops": device_gemm_gflops(a)} if a.device == "cuda" else {"gemm_gflops": gemm_gflops()}


def gemm_gflops(n=1024):
    """GFLOP/s of this torch's float GEMM on an n x n by n x n product, best of 5 runs: the same-run figure
    siglite-bench reports for oneDNN's sgemm (sgemm_gflops)."""
    a, b, c = torch.full((n, n), 0.5), torch.full((n, n), 0.25), torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------------------------------
# The model

def read_config(init_dir):
    with open(os.path.join(init_dir, "config.json")) as f:
        cfg = json.load(f)
    t, v = cfg.get("text_config", {}), cfg.get("vision_config", {})
    # What HF's SiglipModel (4.40) can represent: siglite's other choices have no HF equivalent.
    problems = []
    if t.get("siglite_pooling", "last") != "last":
        problems.append(f"text pooling '{t['siglite_pooling']}' (HF pools the last token)")
    if v.get("siglite_pooling", "map") != "map" or not v.get("vision_use_head", True):
        problems.append(f"vision pooling '{v.get('siglite_pooling')}' (HF 4.40 always has the MAP head)")
    if v.get("siglite_posemb", "learn") != "learn":
        problems.append(f"vision posemb '{v['siglite_posemb']}' (HF learns its position embedding)")
    if t.get("projection_size", t.get("hidden_size")) != t.get("hidden_size"):
        problems.append("text projection_size != hidden_size (HF 4.40's text head is hidden x hidden)")
    for side, c in (("text", t), ("vision", v)):
        if c.get("hidden_act", "gelu_pytorch_tanh") not in ("gelu_pytorch_tanh", "gelu_new", "gelu"):
            problems.append(f"{side} hidden_act '{c['hidden_act']}'")
    if problems:
        raise SystemExit("torch_siglip.py: the model in " + init_dir + " has no Hugging Face equivalent: " +
                         "; ".join(problems))
    return cfg


def gelu(name):
    return (lambda x: F.gelu(x)) if name == "gelu" else (lambda x: F.gelu(x, approximate="tanh"))


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.scale = heads, (d // heads) ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        w = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)
        return self.out_proj(torch.matmul(w, v).transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, d, hidden, act):
        super().__init__()
        self.act, self.fc1, self.fc2 = gelu(act), nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.self_attn = Attention(d, c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.mlp = MLP(d, c["intermediate_size"], c["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(d, eps=c["layer_norm_eps"])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Embeddings(nn.Module):
    def __init__(self, c, vision):
        super().__init__()
        d = c["hidden_size"]
        if vision:
            p = c["patch_size"]
            self.patch_embedding = nn.Conv2d(c["num_channels"], d, kernel_size=p, stride=p)
            self.position_embedding = nn.Embedding((c["image_size"] // p) ** 2, d)
        else:
            self.token_embedding = nn.Embedding(c["vocab_size"], d)
            self.position_embedding = nn.Embedding(c["max_position_embeddings"], d)

    def forward(self, x):
        if hasattr(self, "patch_embedding"):
            return self.patch_embedding(x).flatten(2).transpose(1, 2) + self.position_embedding.weight
        return self.token_embedding(x) + self.position_embedding.weight[: x.shape[1]]


class MAPHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.probe = nn.Parameter(torch.zeros(1, 1, d))
        self.attention = nn.MultiheadAttention(d, c["num_attention_heads"], batch_first=True)
        self.layernorm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.mlp = MLP(d, c["intermediate_size"], c["hidden_act"])

    def forward(self, x):
        h = self.attention(self.probe.repeat(x.shape[0], 1, 1), x, x)[0]
        return (h + self.mlp(self.layernorm(h)))[:, 0]


class Tower(nn.Module):
    def __init__(self, c, vision):
        super().__init__()
        self.embeddings, self.encoder = Embeddings(c, vision), Encoder(c)
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        if vision:
            self.post_layernorm, self.head = nn.LayerNorm(d, eps=eps), MAPHead(c)
        else:
            self.final_layer_norm, self.head = nn.LayerNorm(d, eps=eps), nn.Linear(d, d)

    def forward(self, x):
        h = self.encoder(self.embeddings(x))
        if hasattr(self, "post_layernorm"):
            return self.head(self.post_layernorm(h))
        return self.head(self.final_layer_norm(h)[:, -1, :])  # sticky EOS: the last token


class PlainSiglip(nn.Module):
    """Hugging Face's SiglipModel (4.40) in plain PyTorch: same parameter names, same arithmetic."""

    def __init__(self, cfg):
        super().__init__()
        self.text_model = Tower(cfg["text_config"], vision=False)
        self.vision_model = Tower(cfg["vision_config"], vision=True)
        self.logit_scale = nn.Parameter(torch.zeros(1))
        self.logit_bias = nn.Parameter(torch.zeros(1))

    def get_image_features(self, pixel_values):
        return self.vision_model(pixel_values)

    def logits_per_text(self, input_ids, pixel_values):
        img = self.vision_model(pixel_values)
        txt = self.text_model(input_ids)
        img = img / img.norm(p=2, dim=-1, keepdim=True)
        txt = txt / txt.norm(p=2, dim=-1, keepdim=True)
        return torch.matmul(txt, img.t()) * self.logit_scale.exp() + self.logit_bias


class HFWrapper(nn.Module):
    """transformers' SiglipModel behind the two calls the benchmark makes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def get_image_features(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values)

    def logits_per_text(self, input_ids, pixel_values):
        return self.model(input_ids=input_ids, pixel_values=pixel_values).logits_per_text


def load_model(init_dir, which):
    """(model, named parameters with HF names, description)."""
    cfg = read_config(init_dir)
    if which in ("auto", "hf"):
        try:
            import transformers
            from transformers import SiglipModel
        except ImportError as e:
            if which == "hf":
                raise SystemExit(f"torch_siglip.py: --model hf needs transformers ({e}); bench/compare.py sets "
                                 "up a venv with it")
            print("torch_siglip.py: transformers is not importable; using the plain-PyTorch SigLIP "
                  "(same names and arithmetic as HF's SiglipModel)", file=sys.stderr)
        else:
            import transformers.utils.logging as hf_logging
            hf_logging.set_verbosity_error()
            model, info = SiglipModel.from_pretrained(init_dir, output_loading_info=True)
            missing = info.get("missing_keys", []) + info.get("mismatched_keys", [])
            if missing or info.get("unexpected_keys"):
                raise SystemExit(f"torch_siglip.py: SiglipModel.from_pretrained({init_dir}) did not load the "
                                 f"checkpoint exactly: {info}")
            check_logit_init(model, cfg)
            return HFWrapper(model), list(model.named_parameters()), \
                f"transformers {transformers.__version__} SiglipModel.from_pretrained(DIR)"
    model = PlainSiglip(cfg)
    load_into(model, os.path.join(init_dir, "model.safetensors"))
    check_logit_init(model, cfg)
    return model, list(model.named_parameters()), "plain PyTorch SigLIP (HF names)"


def check_logit_init(model, cfg):
    """t' and b came from the checkpoint (HF's __init__ draws them at random; its _init_weights would
    set 0 and 0): they must equal the config's siglite_logit_*_init."""
    for name in ("logit_scale", "logit_bias"):
        want = cfg.get(f"siglite_{name}_init")
        got = float(getattr(model, name).detach().reshape(-1)[0])
        if want is not None and abs(got - want) > 1e-6 * max(1.0, abs(want)):
            raise SystemExit(f"torch_siglip.py: {name} is {got} after loading, the checkpoint's config says {want}")


def decays(name, p):
    """siglite's optim::default_decay (big_vision's rule) on HF names."""
    if p.dim() < 2:
        return False
    last = name.split(".")
    for suffix in ("token_embedding.weight", "position_embedding.weight", "probe", "logit_scale", "logit_bias"):
        s = suffix.split(".")
        if last[-len(s):] == s:
            return False
    return "layer_norm" not in name and "layernorm" not in name


def sigmoid_loss(logits):
    """The paper's sigmoid loss, -sum(log sigmoid(labels * logits)) / n, labels +1 on the diagonal and
    -1 elsewhere, written as Hugging Face's later SiglipModel writes it (n x n labels)."""
    n = logits.shape[0]
    eye = torch.eye(n, dtype=logits.dtype, device=logits.device)
    labels = -torch.ones_like(logits) + 2 * eye
    return -F.logsigmoid(labels * logits).sum() / n


# ---------------------------------------------------------------------------------------------------
# Modes

def bench_train(a):
    model, params, impl = load_model(a.init, a.model)
    batch = read_safetensors(os.path.join(a.init, "batch.safetensors"))
    pixels, ids = batch["pixel_values"].float().contiguous(), batch["input_ids"].round().long().contiguous()
    model.to(a.device)  # before the optimizer is made
    pixels, ids = pixels.to(a.device), ids.to(a.device)
    model.train()  # dropout is 0 everywhere in SigLIP; train mode only keeps nn.MultiheadAttention off its fast path
    with_decay = [p for n, p in params if p.requires_grad and decays(n, p)]
    without = [p for n, p in params if p.requires_grad and not decays(n, p)]
    opt = torch.optim.AdamW([{"params": with_decay}, {"params": without, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4)
    rss_loaded = rss_mib()
    times, losses = [], []
    reset_peak_device(a)
    for s in range(a.warmup + a.steps):
        sync(a)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(a):
            loss = sigmoid_loss(model.logits_per_text(ids, pixels))
        loss.backward()
        opt.step()
        sync(a)
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= a.warmup:
            times.append(dt)
    step_s = statistics.median(times)
    n = pixels.shape[0]
    out = {"mode": "train", "batch": n, "step_seconds": times, "seconds": step_s, "pairs_per_s": n / step_s,
           "first_loss": losses[0], "losses": losses, "model": impl,
           "decay_params": len(with_decay), "no_decay_params": len(without), "rss_after_load_mib": rss_loaded}
    if a.device == "cuda":
        out["peak_device_mib"] = peak_device_mib()
    out.update(gemm_figures(a))
    return out


def bench_infer(a):
    model, _, impl = load_model(a.init, a.model)
    pixels = read_safetensors(os.path.join(a.init, "batch.safetensors"))["pixel_values"].float().contiguous()
    model.to(a.device)
    pixels = pixels.to(a.device)
    model.eval()
    rss_loaded = rss_mib()
    times, first = [], float("nan")
    reset_peak_device(a)
    with torch.no_grad():
        for s in range(a.warmup + a.steps):
            sync(a)
            t0 = time.perf_counter()
            with autocast(a):
                e = model.get_image_features(pixels)
                e = e / e.norm(p=2, dim=-1, keepdim=True)
            sync(a)
            dt = time.perf_counter() - t0
            first = float(e[0, 0])
            if s >= a.warmup:
                times.append(dt)
    sec = statistics.median(times)
    n = pixels.shape[0]
    out = {"mode": "infer", "batch": n, "step_seconds": times, "seconds": sec, "images_per_s": n / sec,
           "first_embedding": first, "model": impl, "rss_after_load_mib": rss_loaded}
    if a.device == "cuda":
        out["peak_device_mib"] = peak_device_mib()
    out.update(gemm_figures(a))
    return out


# The plain loss's peak (forward + backward) beyond its inputs, in n x n float tensors: 9.7 measured with this
# script at n = 2048 (torch 1.13; 12 at n = 1024, where the fixed costs weigh more). Sizes that cannot fit are
# reported as not runnable instead of being tried.
LOSS_PEAK_NN_TENSORS = 10


def mem_available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return float("inf")


def bench_loss(a):
    n, d = a.n, a.d
    nn_mib = n * n * 4 / 2**20
    cuda = a.device == "cuda"
    need = LOSS_PEAK_NN_TENSORS * nn_mib
    avail = torch.cuda.mem_get_info()[0] / 2**20 if cuda else mem_available_mib()
    if need > 0.9 * avail:
        return {"mode": "loss", "n": n, "d": d, "skipped": True,
                "reason": f"the plain loss needs about {LOSS_PEAK_NN_TENSORS} n x n float tensors "
                          f"({need:.0f} MiB; the logits alone {nn_mib:.0f} MiB), {avail:.0f} MiB available"
                          + (" on the GPU" if cuda else "")}
    gen = torch.Generator().manual_seed(a.seed)
    img = F.normalize(torch.randn(n, d, generator=gen), dim=-1).to(a.device).requires_grad_()
    txt = F.normalize(torch.randn(n, d, generator=gen), dim=-1).to(a.device).requires_grad_()
    times, peaks, value = [], [], float("nan")
    exact_peak = True
    for _ in range(a.steps):
        tp = torch.full((1,), math.log(10.0), device=a.device, requires_grad=True)
        b = torch.full((1,), -10.0, device=a.device, requires_grad=True)
        img.grad = txt.grad = None
        if cuda:
            reset_peak_device(a)
            before = torch.cuda.memory_allocated() / 2**20
        else:
            exact_peak = reset_peak_rss() and exact_peak
            before = rss_mib()
        sync(a)
        t0 = time.perf_counter()
        with autocast(a):
            loss = sigmoid_loss(torch.matmul(txt, img.t()) * tp.exp() + b)
        loss.backward()
        sync(a)
        times.append(time.perf_counter() - t0)
        if cuda:
            peaks.append(peak_device_mib() - before)
        else:
            peaks.append((rss_mib("VmHWM") if exact_peak else peak_rss_mib()) - before)
        value = loss.item()
        if not math.isfinite(value):
            raise SystemExit("torch_siglip.py: non-finite loss")
    out = {"mode": "loss", "n": n, "d": d, "loss_seconds": times, "seconds": statistics.median(times),
           "loss": value, "peak_beyond_inputs_mib": max(peaks),
           "peak_beyond_inputs_nn_tensors": max(peaks) / nn_mib,
           "peak_method": "torch.cuda.max_memory_allocated beyond the inputs, reset per step" if cuda
           else "VmHWM reset per step (resident set)" if exact_peak else "ru_maxrss (whole process)"}
    if cuda:
        out["peak_device_mib"] = max(peaks)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["train", "infer", "loss"])
    p.add_argument("--init", help="directory written by siglite-bench --save-init (train, infer)")
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--model", choices=["auto", "hf", "plain"], default="auto")
    p.add_argument("--preset", help="only echoed in the output, as siglite-bench does")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                   help="fp32: float32 products; tf32: TF32 matmuls and convolutions; bf16: autocast (GPU only)")
    a = p.parse_args()
    # siglite-bench's defaults per mode
    a.steps = a.steps if a.steps is not None else {"train": 5, "infer": 5, "loss": 3}[a.mode]
    a.warmup = a.warmup if a.warmup is not None else {"train": 2, "infer": 1, "loss": 0}[a.mode]
    if a.steps < 1 or a.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    if a.mode != "loss" and not a.init:
        p.error(f"{a.mode} needs --init DIR (siglite-bench {a.mode} --save-init DIR writes it)")
    if a.precision == "bf16" and a.device != "cuda":
        p.error("--precision bf16 is autocast on the GPU: it needs --device cuda")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error(f"--device cuda: this torch ({torch.__version__}) sees no CUDA GPU")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    set_precision(a)
    out = {"train": bench_train, "infer": bench_infer, "loss": bench_loss}[a.mode](a)
    if a.preset:
        out["preset"] = a.preset
    out.update({"framework": "pytorch", "torch_version": torch.__version__, "threads": torch.get_num_threads(),
                "blas": blas_library(), "peak_rss_mib": peak_rss_mib(), "device": a.device,
                "precision": a.precision,
                "gpu_name": torch.cuda.get_device_name() if a.device == "cuda" else None})
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes optim_golden.json: parameter trajectories of AdamW, SGD and LION computed by PyTorch.

Run with Debian's python3 (python3-torch):  /usr/bin/python3 tests/reference/make_optim_golden.py

Each case holds small float32 parameters in parameter groups (own weight decay and learning-rate
multiplier), then a few steps, each with a base learning rate, one gradient per parameter (a
parameter without one is skipped that step, as torch skips p.grad = None) and the parameters after
the step. AdamW and SGD are torch.optim's; LION is not in torch 1.13 and is written out below from
the paper. Inputs are drawn from a generator seeded by the case name, so re-running the script
reproduces the file byte for byte.
"""
import json
import os
import zlib

import torch

FORMAT_VERSION = 1
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.json")
torch.set_num_threads(1)

SHAPES = {"w": (3, 4), "s": (2, 2), "b": (4,)}


def lion_step(params, state, lr, beta1, beta2, groups):
    """LION (Chen et al. 2023, Algorithm 2) in plain torch, per group weight decay and lr_mult."""
    for g in groups:
        for name in g["params"]:
            p = params[name]
            if p.grad is None:
                continue
            m = state.setdefault(name, torch.zeros_like(p))
            c = m * beta1 + p.grad * (1 - beta1)
            # A coordinate this close to 0 could flip sign between implementations.
            assert c.abs().min().item() > 1e-4, "pick other gradients: sign(c) is ambiguous"
            lr_g = lr * g["lr_mult"]
            p.mul_(1 - lr_g * g["weight_decay"]).add_(torch.sign(c), alpha=-lr_g)
            m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def run_case(name, optimizer, options, groups, lrs, skip):
    """`skip` maps a step index to the parameter names that get no gradient at that step."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    params = {}
    for n, shape in SHAPES.items():
        mag = torch.rand(shape, generator=gen) + 0.5
        sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
        params[n] = (mag * sign).float().requires_grad_()
    init = {n: encode(p) for n, p in params.items()}

    def torch_groups():
        return [{"params": [params[n] for n in g["params"]], "lr": lrs[0] * g["lr_mult"],
                 "weight_decay": g["weight_decay"]} for g in groups]

    if optimizer == "adamw":
        opt = torch.optim.AdamW(torch_groups(), lr=lrs[0], betas=(options["beta1"], options["beta2"]),
                                eps=options["eps"])
    elif optimizer == "sgd":
        opt = torch.optim.SGD(torch_groups(), lr=lrs[0], momentum=options["momentum"],
                              dampening=options["dampening"], nesterov=options["nesterov"])
    lion_state = {}

    steps = []
    for k, lr in enumerate(lrs):
        grads = {}
        for n, p in params.items():
            if n in skip.get(k, ()):
                p.grad = None
                continue
            p.grad = torch.randn(p.shape, generator=gen).float()
            grads[n] = encode(p.grad)
        if optimizer == "lion":
            with torch.no_grad():
                lion_step(params, lion_state, lr, options["beta1"], options["beta2"], groups)
        else:
            for tg, g in zip(opt.param_groups, groups):
                tg["lr"] = lr * g["lr_mult"]
            opt.step()
        steps.append({"lr": lr, "grads": grads, "params": {n: encode(p) for n, p in params.items()}})
    return {"name": name, "optimizer": optimizer, "options": options, "groups": groups, "init": init,
            "steps": steps}


def encode(t):
    return {"shape": list(t.shape), "values": [float(v) for v in t.detach().flatten().tolist()]}


GROUPS = [{"params": ["w", "s"], "lr_mult": 1.0, "weight_decay": 0.1},
          {"params": ["b"], "lr_mult": 0.5, "weight_decay": 0.0}]
# A changing base learning rate (set with set_lr before each step) and one skipped parameter.
LRS = [0.01, 0.02, 0.03, 0.025, 0.015, 0.01]
SKIP = {2: ("b",), 3: ("s",)}

CASES = [
    run_case("adamw", "adamw", {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8}, GROUPS, LRS, SKIP),
    run_case("adamw_eps", "adamw", {"beta1": 0.8, "beta2": 0.999, "eps": 1e-3}, GROUPS, LRS, SKIP),
    run_case("sgd_momentum", "sgd", {"momentum": 0.9, "dampening": 0.1, "nesterov": False}, GROUPS, LRS, SKIP),
    run_case("sgd_nesterov", "sgd", {"momentum": 0.8, "dampening": 0.0, "nesterov": True}, GROUPS, LRS, SKIP),
    run_case("sgd_plain", "sgd", {"momentum": 0.0, "dampening": 0.0, "nesterov": False}, GROUPS, LRS, SKIP),
    run_case("lion", "lion", {"beta1": 0.9, "beta2": 0.99}, GROUPS, [x / 10 for x in LRS], SKIP),
]

if __name__ == "__main__":
    with open(OUT, "w") as f:
        json.dump({"format_version": FORMAT_VERSION, "torch_version": torch.__version__, "cases": CASES}, f,
                  separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(CASES)} cases to {OUT}")

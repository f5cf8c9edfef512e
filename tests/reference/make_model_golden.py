"""Writes the whole-model and per-layer golden files for tests/test_model_golden.cpp.

The reference is Hugging Face's own SiglipModel, run in float64 on float32-representable weights:
  /usr/bin/python3 -m venv --system-site-packages /tmp/hfenv      # Debian's python3-torch (1.13)
  /tmp/hfenv/bin/pip install transformers==4.40.2
  /tmp/hfenv/bin/python tests/reference/make_model_golden.py

Output, in tests/reference/siglip_tiny/ (an HF model directory plus the golden tensors):
  config.json          HF config of a tiny SigLIP
  model.safetensors    its weights (F32, HF names); loads with SiglipModel.from_pretrained
  golden.safetensors   inputs, outputs, loss and the gradient of every parameter, and per-layer
                       cases ("layer.<module path>.{input,output,cot,grad_input}" and
                       "layer.<module path>.grad.<parameter>", gradients of sum(output * cot))
"""
import json
import math
import os

import torch
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel

# HF's attention computes its softmax in float32 even for a float64 model; keep it in float64 so
# that the reference is exact to double precision.
_softmax = torch.nn.functional.softmax
torch.nn.functional.softmax = lambda x, dim=None, dtype=None, **kwargs: _softmax(x, dim=dim)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "siglip_tiny")
torch.manual_seed(0)

config = SiglipConfig(
    text_config=dict(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=2, max_position_embeddings=6, layer_norm_eps=1e-6,
                     hidden_act="gelu_pytorch_tanh", pad_token_id=1, eos_token_id=1),
    vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                       image_size=8, patch_size=4, num_channels=3, layer_norm_eps=1e-6,
                       hidden_act="gelu_pytorch_tanh"),
)
model = SiglipModel(config).double()

# Every parameter random (LayerNorm scales near 1), so that a misplaced weight or bias shows; then
# rounded to float32 so that the float and double C++ models start from the same values.
with torch.no_grad():
    for name, p in model.named_parameters():
        if name == "logit_scale":
            p.fill_(math.log(10.0))
        elif name == "logit_bias":
            p.fill_(-2.0)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif p.dim() == 1:
            p.copy_(0.1 * torch.randn_like(p))
        else:
            p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
        p.copy_(p.float().double())

n = 3
pixel_values = torch.randn(n, 3, 8, 8, dtype=torch.float64).float().double()
input_ids = torch.randint(2, 20, (n, 6))
input_ids[:, -1] = 1  # sticky EOS: the last position holds EOS
input_ids[0, 3:] = 1  # a short text, padded with EOS

out = model(input_ids=input_ids, pixel_values=pixel_values)
# The sigmoid loss of the paper's Algorithm 1 (this transformers version leaves it out of forward).
labels = 2 * torch.eye(n, dtype=torch.float64) - 1
loss = -torch.nn.functional.logsigmoid(labels * out.logits_per_text).sum() / n
loss.backward()

golden = {
    "input.pixel_values": pixel_values,
    "input.input_ids": input_ids.double(),
    "output.image_embeds": out.image_embeds,
    "output.text_embeds": out.text_embeds,
    "output.logits_per_text": out.logits_per_text,
    "output.logits_per_image": out.logits_per_image,
    "output.loss": loss.detach().reshape(1),
}
for name, p in model.named_parameters():
    golden["grad." + name] = p.grad


def layer_case(path, module, x, call=None):
    """Runs module on x, and records output and gradients of sum(output * cot)."""
    x = x.detach().clone().requires_grad_(True)
    params = dict(module.named_parameters())
    for p in params.values():
        p.grad = None
    y = call(module, x) if call else module(x)
    y = y[0] if isinstance(y, tuple) else y
    cot = torch.randn_like(y).float().double()
    (y * cot).sum().backward()
    golden[f"layer.{path}.input"] = x.detach()
    golden[f"layer.{path}.output"] = y.detach()
    golden[f"layer.{path}.cot"] = cot
    if x.grad is not None:
        golden[f"layer.{path}.grad_input"] = x.grad
    for name, p in params.items():
        golden[f"layer.{path}.grad.{name}"] = p.grad


# Inputs representable in float32: the golden file is read back as float.
tokens = torch.randn(n, 4, 16, dtype=torch.float64).float().double()
text_tokens = torch.randn(n, 6, 16, dtype=torch.float64).float().double()
layer_case("vision_model.embeddings", model.vision_model.embeddings, pixel_values)
layer_case("vision_model.encoder.layers.0", model.vision_model.encoder.layers[0], tokens,
           lambda m, x: m(x, None))
layer_case("vision_model.encoder.layers.0.self_attn", model.vision_model.encoder.layers[0].self_attn, tokens)
layer_case("vision_model.encoder.layers.0.mlp", model.vision_model.encoder.layers[0].mlp, tokens)
layer_case("vision_model.encoder.layers.0.layer_norm1", model.vision_model.encoder.layers[0].layer_norm1, tokens)
layer_case("vision_model.post_layernorm", model.vision_model.post_layernorm, tokens)
layer_case("vision_model.head", model.vision_model.head, tokens)
layer_case("text_model.encoder.layers.1", model.text_model.encoder.layers[1], text_tokens,
           lambda m, x: m(x, None))
layer_case("text_model.head", model.text_model.head, text_tokens[:, -1, :])

os.makedirs(OUT, exist_ok=True)
model.float().save_pretrained(OUT, safe_serialization=True)
save_file({k: v.detach().contiguous() for k, v in golden.items()}, os.path.join(OUT, "golden.safetensors"),
          metadata={"torch": torch.__version__, "format_version": "1"})
print(f"wrote {len(golden)} golden tensors to {OUT}")

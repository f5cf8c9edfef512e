"""Writes the whole-model and per-layer golden files for tests/test_model.cpp.

The reference is Hugging Face's own SiglipModel, run in float64 on float32-representable weights, every golden
tensor stored in float64:
  python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch transformers safetensors
  /tmp/hfenv/bin/python tests/reference/make_model_golden.py

In tests/reference/siglip_tiny/ (an HF model directory plus the golden tensors):
  config.json          HF config of a tiny SigLIP
  model.safetensors    its weights (F32, HF names). Both were written by transformers 4.40.2 (SiglipModel's
                       save_pretrained) and are kept: the script loads them with the installed transformers, and
                       makes them afresh only where they are missing.
  golden.safetensors   inputs, outputs, loss and the gradient of every parameter, and per-layer
                       cases ("layer.<module path>.{input,output,cot,grad_input}" and
                       "layer.<module path>.grad.<parameter>", gradients of sum(output * cot)); the text tower's
                       output with an attention mask ("text_masked.*"). Its metadata names the torch and
                       transformers versions that computed it.
"""

import math
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel

# HF's attention computes its softmax in float32 even for a float64 model; keep it in float64 so
# that the reference is exact to double precision.
_softmax = torch.nn.functional.softmax
torch.nn.functional.softmax = lambda x, dim=None, dtype=None, **kwargs: _softmax(x, dim=dim)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "siglip_tiny")


def make_model():
    """A tiny SiglipModel, every parameter random (LayerNorm scales near 1) so that a misplaced weight or bias
    shows, saved in float32 so that the float and double C++ models start from the same values. Only for a
    directory without weights: it does not remake the committed ones (those came from an earlier version of this
    script, drawn in float64 in another order)."""
    config = SiglipConfig(
        text_config=dict(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=6, layer_norm_eps=1e-6,
                         hidden_act="gelu_pytorch_tanh", pad_token_id=1, eos_token_id=1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=8, patch_size=4, num_channels=3, layer_norm_eps=1e-6,
                           hidden_act="gelu_pytorch_tanh"),
    )
    model = SiglipModel(config)
    torch.manual_seed(0)
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
    model.float().save_pretrained(OUT, safe_serialization=True)


def f64(t):
    """The tensor as float64, contiguous, for the file."""
    return t.detach().to(torch.float64).contiguous()


def main():
    if not os.path.exists(os.path.join(OUT, "model.safetensors")):
        make_model()
    # Eager attention: the plain softmax(QK^T)V that the float64 softmax above applies to.
    model = SiglipModel.from_pretrained(OUT, attn_implementation="eager").double()
    torch.manual_seed(1)
    golden = {}

    n = 3
    pixel_values = torch.randn(n, 3, 8, 8, dtype=torch.float64).float().double()
    input_ids = torch.randint(2, 20, (n, 6))
    input_ids[:, -1] = 1  # sticky EOS: the last position holds EOS
    input_ids[0, 3:] = 1  # a short text, padded with EOS
    # HF's own sigmoid loss (return_loss needs transformers 4.41 or later).
    out = model(input_ids=input_ids, pixel_values=pixel_values, return_loss=True)
    out.loss.backward()
    golden.update({
        "input.pixel_values": pixel_values,
        "input.input_ids": input_ids.double(),
        "output.image_embeds": out.image_embeds,
        "output.text_embeds": out.text_embeds,
        "output.logits_per_text": out.logits_per_text,
        "output.logits_per_image": out.logits_per_image,
        "output.loss": out.loss.reshape(1),
    })
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
        golden[f"layer.{path}.input"] = x
        golden[f"layer.{path}.output"] = y
        golden[f"layer.{path}.cot"] = cot
        if x.grad is not None:
            golden[f"layer.{path}.grad_input"] = x.grad
        for name, p in params.items():
            golden[f"layer.{path}.grad.{name}"] = p.grad

    # Inputs representable in float32: the float tests read the same values.
    tokens = torch.randn(n, 4, 16, dtype=torch.float64).float().double()
    text_tokens = torch.randn(n, 6, 16, dtype=torch.float64).float().double()
    vision, text = model.vision_model, model.text_model
    layer_case("vision_model.embeddings", vision.embeddings, pixel_values)
    layer_case("vision_model.encoder.layers.0", vision.encoder.layers[0], tokens, lambda m, x: m(x, None))
    layer_case("vision_model.encoder.layers.0.self_attn", vision.encoder.layers[0].self_attn, tokens)
    layer_case("vision_model.encoder.layers.0.mlp", vision.encoder.layers[0].mlp, tokens)
    layer_case("vision_model.encoder.layers.0.layer_norm1", vision.encoder.layers[0].layer_norm1, tokens)
    layer_case("vision_model.post_layernorm", vision.post_layernorm, tokens)
    layer_case("vision_model.head", vision.head, tokens)
    layer_case("text_model.encoder.layers.1", text.encoder.layers[1], text_tokens, lambda m, x: m(x, None))
    layer_case("text_model.head", text.head, text_tokens[:, -1, :])

    # The text tower with an attention mask that hides position 4 (of EOS padding) from every query.
    with torch.no_grad():
        ids = torch.tensor([[5, 6, 7, 1, 1, 1]])
        mask = torch.tensor([[1, 1, 1, 1, 0, 1]])
        golden["text_masked.input_ids"] = ids.double()
        golden["text_masked.attention_mask"] = mask.double()
        golden["text_masked.output"] = text(input_ids=ids, attention_mask=mask).pooler_output

    save_file({k: f64(v) for k, v in golden.items()}, os.path.join(OUT, "golden.safetensors"),
              metadata={"torch": torch.__version__, "transformers": transformers.__version__, "format_version": "2"})
    print(f"wrote {len(golden)} golden tensors to {OUT}")


if __name__ == "__main__":
    main()

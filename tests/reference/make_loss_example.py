#!/usr/bin/python3
"""Prints the numbers of docs/loss.md's worked example, computed independently with PyTorch in float64.

Run with Debian's python3 (python3-torch):  /usr/bin/python3 tests/reference/make_loss_example.py

The example: a batch of four (image, text) pairs of 3-D unit embeddings at SigLIP's initial t' = log 10
and b = -10. Pair 3 is deliberately mismatched: its text is image 0's direction and has nothing in
common with image 3, so (image 0, text 3) is a hard negative. The sigmoid loss is written out from the
paper's formula and differentiated by torch.autograd; the softmax (CLIP) loss uses
torch.nn.functional.cross_entropy. tests/test_loss.cpp ("the worked example of docs/loss.md") holds
these numbers; docs/loss.md prints them.
"""
import math

import torch
import torch.nn.functional as F

torch.set_printoptions(precision=7, sci_mode=False)
D = torch.float64

X = torch.tensor([[1.0, 0.0, 0.0],  # image 0
                  [0.0, 1.0, 0.0],  # image 1
                  [0.0, 0.0, 1.0],  # image 2
                  [0.0, 0.6, 0.8]],  # image 3
                 dtype=D, requires_grad=True)
Y = torch.tensor([[0.8, 0.6, 0.0],  # text 0
                  [0.0, 1.0, 0.0],  # text 1
                  [0.0, 0.0, 1.0],  # text 2
                  [1.0, 0.0, 0.0]],  # text 3: describes image 0, not image 3
                 dtype=D, requires_grad=True)
t_prime = torch.tensor([math.log(10.0)], dtype=D, requires_grad=True)
b = torch.tensor([-10.0], dtype=D, requires_grad=True)
n = X.shape[0]
assert torch.allclose(X.norm(dim=1), torch.ones(n, dtype=D)) and torch.allclose(Y.norm(dim=1), torch.ones(n, dtype=D))


def show(name, value):
    if value.numel() == 1:
        print(f"{name} = {value.item():.7f}")
    else:
        print(f"{name} =\n{value.detach()}")


# The sigmoid loss: logits = t X Y^T + b, labels +1 on the diagonal and -1 elsewhere,
# loss = -sum log_sigmoid(label * logit) / n.
logits = X @ Y.T * t_prime.exp() + b
logits.retain_grad()
labels = 2 * torch.eye(n, dtype=D) - 1
terms = -F.logsigmoid(labels * logits)
loss = terms.sum() / n
loss.backward()

show("X Y^T", X @ Y.T)
show("logits", logits)
show("sigmoid(logits)", torch.sigmoid(logits))
show("-log_sigmoid(label * logit)", terms)
show("row sums of the terms", terms.sum(dim=1))
show("sigmoid loss", loss)
show("G = d loss / d logits", logits.grad)
show("d loss / d t'", t_prime.grad)
show("d loss / d b", b.grad)
show("d loss / d X", X.grad)
show("d loss / d Y", Y.grad)

# The softmax (CLIP) loss on the same embeddings: t X Y^T without b, one cross-entropy per row
# (image -> text) and per column (text -> image), averaged.
with torch.no_grad():
    clip_logits = X @ Y.T * t_prime.exp()
    target = torch.arange(n)
    rows = F.cross_entropy(clip_logits, target, reduction="none")
    cols = F.cross_entropy(clip_logits.T, target, reduction="none")
    show("softmax rows: CE of image i -> text i", rows)
    show("softmax rows: mean", rows.mean())
    show("softmax columns: CE of text j -> image j", cols)
    show("softmax columns: mean", cols.mean())
    show("softmax loss", (rows.mean() + cols.mean()) / 2)

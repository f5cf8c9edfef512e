"""Draws docs/figures/chunked_ring.png, the figure of docs/distributed.md: the chunked sigmoid loss for D = 3 ranks.

Left, the ring: each rank sends the text block it holds to the next rank at every step. Right, the global B x B
matrix of logits (images as rows, texts as columns, b = B / D of each a rank): the block that rank r computes in step
s holds its images against the texts of rank (r - s) mod D. Only the diagonal blocks, computed in step 0, hold the
positive pairs. Run: python3 docs/figures/make_ring.py (needs matplotlib).
"""
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle

D = 3
COLOURS = ["#4c72b0", "#dd8452", "#55a868"]  # step 0, 1, 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chunked_ring.png")

fig, (ring, grid) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})

# The ring.
ring.set_aspect("equal")
ring.axis("off")
ring.set_xlim(-1.7, 1.7)
ring.set_ylim(-1.7, 1.7)
where = [(math.sin(2 * math.pi * r / D), math.cos(2 * math.pi * r / D)) for r in range(D)]
for r, (x, y) in enumerate(where):
    ring.add_patch(Circle((x, y), 0.34, facecolor="#eeeeee", edgecolor="black"))
    ring.text(x, y + 0.07, f"rank {r}", ha="center", va="center", fontsize=11)
    ring.text(x, y - 0.12, f"images {r}", ha="center", va="center", fontsize=8, color="#555555")
for r in range(D):
    (x0, y0), (x1, y1) = where[r], where[(r + 1) % D]
    ring.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                                   mutation_scale=16, shrinkA=26, shrinkB=26, color="black"))
ring.text(0, -1.62, "each step: send the text block held to rank r + 1,\nreceive the next from rank r - 1, "
          "compute meanwhile", ha="center", va="bottom", fontsize=9)
ring.set_title("the ring (D = 3)", fontsize=11)

# The B x B matrix, one b x b block a cell.
grid.set_aspect("equal")
grid.set_xlim(-0.9, D + 0.1)
grid.set_ylim(D + 0.1, -0.9)
grid.axis("off")
for r in range(D):
    for s in range(D):
        t = (r - s) % D  # the text block rank r holds in step s
        grid.add_patch(Rectangle((t, r), 1, 1, facecolor=COLOURS[s], edgecolor="white", linewidth=2, alpha=0.85))
        label = f"step {s}" + ("\n+1 on the\ndiagonal" if s == 0 else "\nall -1")
        grid.text(t + 0.5, r + 0.5, label, ha="center", va="center", fontsize=8, color="white")
    grid.text(-0.1, r + 0.5, f"images\nof rank {r}", ha="right", va="center", fontsize=8)
    grid.text(r + 0.5, -0.1, f"texts\nof rank {r}", ha="center", va="bottom", fontsize=8)
grid.set_title("the B x B logits: the block each rank computes in each step", fontsize=11)

fig.tight_layout()
fig.savefig(OUT, dpi=90)
print("wrote", OUT)

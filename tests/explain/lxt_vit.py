"""A small vision transformer that runs either on plain torch operations (explained by
our engine) or on lxt's explicit AttnLRP functions (the oracle, in a subprocess:
``python lxt_vit.py STATE INPUT TARGET OUT``)."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12  # both sides: stabilisers small enough that their conventions do not matter


class PlainOps:
    linear = staticmethod(F.linear)
    layer_norm = staticmethod(lambda h, norm: F.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
    softmax = staticmethod(lambda s: torch.softmax(s, -1))
    gelu = staticmethod(F.gelu)

    @staticmethod
    def add(a, b):
        return a + b

    @staticmethod
    def matmul(a, b):
        return a @ b

    @staticmethod
    def scale(a, c):
        return a * c


class LxtOps:
    """lxt's explicit rules: ε on linear maps and sums, the AttnLRP softmax and
    ε-uniform matmul rules, LayerNorm with the division held constant, identity on GELU."""

    def __init__(self) -> None:
        import lxt.explicit.functional as lf
        import lxt.explicit.rules as lr

        self.lf, self.lr = lf, lr

    def linear(self, x, w, b):
        return self.lf.linear_epsilon(x, w, b, epsilon=EPS)

    def layer_norm(self, h, norm):
        return self.lf.layer_norm_grad_fn.apply(h, norm.weight, norm.bias, norm.eps, EPS)

    def softmax(self, s):
        return self.lf.softmax(s, -1)

    def gelu(self, h):
        return self.lr.identity(F.gelu, h)

    def add(self, a, b):
        return self.lf.add2(a, b, epsilon=EPS)

    def matmul(self, a, b):
        return self.lf.matmul(a, b, epsilon=EPS)

    def scale(self, a, c):
        return self.lf.mul2(a, c)


class TinyViT(nn.Module):
    def __init__(self, size: int = 16, patch: int = 4, dim: int = 32, heads: int = 4, depth: int = 2,
                 classes: int = 3) -> None:
        super().__init__()
        self.patch, self.heads = patch, heads
        self.embed = nn.Linear(patch * patch, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.5)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
                "ln2": nn.LayerNorm(dim), "fc1": nn.Linear(dim, 2 * dim), "fc2": nn.Linear(2 * dim, dim),
            }))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.ops = PlainOps()
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
                if isinstance(m, nn.Linear):
                    m.bias.uniform_(-0.1, 0.1)

    def forward(self, x):
        o = self.ops
        b, _, h, w = x.shape
        p = self.patch
        patches = x.reshape(b, h // p, p, w // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
        t = o.linear(patches, self.embed.weight, self.embed.bias)
        t = torch.cat([self.cls.expand(b, -1, -1), t], 1)
        t = o.add(t, self.pos)
        n, d = t.shape[1], t.shape[2]
        hd = d // self.heads
        for blk in self.blocks:
            a = o.layer_norm(t, blk["ln1"])
            q, k, v = o.linear(a, blk["qkv"].weight, blk["qkv"].bias).reshape(b, n, 3, self.heads, hd).permute(
                2, 0, 3, 1, 4)
            s = o.scale(o.matmul(q, k.transpose(-2, -1)), hd ** -0.5)
            a = o.matmul(o.softmax(s), v).transpose(1, 2).reshape(b, n, d)
            t = o.add(t, o.linear(a, blk["proj"].weight, blk["proj"].bias))
            m = o.linear(o.layer_norm(t, blk["ln2"]), blk["fc1"].weight, blk["fc1"].bias)
            t = o.add(t, o.linear(o.gelu(m), blk["fc2"].weight, blk["fc2"].bias))
        t = o.layer_norm(t, self.norm)
        return o.linear(t[:, 0], self.head.weight, self.head.bias)


def lxt_relevance(model: TinyViT, x: torch.Tensor, target: int) -> torch.Tensor:
    """Input relevance by lxt: each function's backward returns relevance, seeded with
    the target logit."""
    model.ops = LxtOps()
    xx = x.clone().requires_grad_(True)
    out = model(xx)
    out[0, target].backward(out[0, target].detach())
    return xx.grad.detach()


if __name__ == "__main__":
    state, inp, target, dest = sys.argv[1:5]
    torch.set_default_dtype(torch.float64)
    net = TinyViT().double()
    net.load_state_dict(torch.load(state, weights_only=True))
    for p_ in net.parameters():
        p_.requires_grad_(False)
    torch.save(lxt_relevance(net.eval(), torch.load(inp, weights_only=True), int(target)), dest)

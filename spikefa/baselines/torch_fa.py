"""The PyTorch baseline of `spikefa bench rate`: 784-1000-10 sigmoid network trained with feedback
alignment the way PyTorch FA libraries do it — a linear layer whose autograd backward sends the
error through a fixed random B instead of Wᵀ. Loss: binary cross-entropy on the logits, whose
gradient is the raw error e (the paper's output delta); SGD with weight decay, as spikefa's rule.
"""

from __future__ import annotations

import time

import numpy as np
import torch


class FALinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, grad_out):
        x, feedback = ctx.saved_tensors
        grad_x = (
            grad_out @ feedback if ctx.needs_input_grad[0] else None
        )  # B, not W, carries the error
        return grad_x, grad_out.T @ x, grad_out.sum(0), None


class FALinear(torch.nn.Module):
    def __init__(self, n_in, n_out, init_scale, feedback_scale):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_out, n_in).uniform_(-init_scale, init_scale))
        self.bias = torch.nn.Parameter(torch.zeros(n_out))
        self.register_buffer(
            "feedback", torch.empty(n_out, n_in).uniform_(-feedback_scale, feedback_scale)
        )

    def forward(self, x):
        return FALinearFunction.apply(x, self.weight, self.bias, self.feedback)


def make_net(sizes=(784, 1000, 10), init_scale=0.05, feedback_scale=0.5):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        FALinear(sizes[0], sizes[1], init_scale, feedback_scale),
        torch.nn.Sigmoid(),
        FALinear(sizes[1], sizes[2], init_scale, feedback_scale),
    )


def examples_per_s(
    X: np.ndarray, Y: np.ndarray, batch: int, eta=1e-3, weight_decay=1e-6, threads=2
) -> float:
    """Train on the rows of X, Y in minibatches of `batch` (1 = online) and time it."""
    torch.set_num_threads(threads)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=eta, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    Xt, Yt = (
        torch.from_numpy(np.ascontiguousarray(X, np.float32)),
        torch.from_numpy(np.ascontiguousarray(Y, np.float32)),
    )

    def epoch(n):
        for lo in range(0, n, batch):
            opt.zero_grad(set_to_none=True)
            x, y = Xt[lo : lo + batch], Yt[lo : lo + batch]
            (loss_fn(net(x), y) / len(x)).backward()
            opt.step()

    epoch(min(len(X), 20 * batch))  # warm-up
    t = time.perf_counter()
    epoch(len(X))
    return len(X) / (time.perf_counter() - t)

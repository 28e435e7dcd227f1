"""fk.optim.Adam: torch.optim.Adam's update without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import torch

from fk.optim import Adam


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    return [torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(),
            torch.randn(2, generator=g, dtype=torch.float64).requires_grad_()], a, b


def _run(opt_cls, steps=60, **kw):
    (x, y), a, b = _problem()
    opt = opt_cls([{"params": [x], "lr": 0.05}, {"params": [y], "lr": 0.2}], **kw)
    for i in range(steps):
        opt.zero_grad()
        loss = ((a @ x - b) ** 2).sum() + (y ** 2).sum() * (1 + i % 3)
        loss.backward()
        opt.step()
    return x.detach(), y.detach()


def test_adam_equals_torch_optim_adam_over_groups():
    ours = _run(Adam)
    theirs = _run(torch.optim.Adam, foreach=False)
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, rtol=0, atol=1e-12)


def test_adam_skips_params_without_grad_and_follows_lr_changes():
    p, q = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = Adam([p, q], lr=0.1)
    (p ** 2).sum().backward()
    opt.step()
    assert torch.equal(q.detach(), torch.ones(2)) and q not in opt.state
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.9))  # first step moves lr along -sign(grad)
    opt.param_groups[0]["lr"] = 0.0
    opt.zero_grad()
    (p ** 2).sum().backward()
    before = p.detach().clone()
    opt.step()
    assert torch.equal(p.detach(), before)


def test_adam_does_not_import_dynamo():
    code = ("import sys, torch; from fk.optim import Adam; p = torch.zeros(2, requires_grad=True); "
            "o = Adam([p]); p.sum().backward(); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

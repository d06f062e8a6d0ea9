"""The native DQN's own Adam: torch.optim.Adam's arithmetic to the bit, torch.optim.Adam's
checkpoint format both ways, and a whole `rlkit train` that never imports torch._dynamo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from rlkit_dqn.native import Adam, q_network


def _loss(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.smooth_l1_loss(net(x), torch.ones(len(x), 2))


def _twins() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ours = q_network(16)
    theirs = q_network(16)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def test_adam_is_torch_adams_update_bit_for_bit() -> None:
    ours, theirs = _twins()
    adam = Adam(ours.parameters(), lr=2.5e-3)
    reference = torch.optim.Adam(theirs.parameters(), lr=2.5e-3, foreach=False)
    for step in range(30):
        x = torch.randn(32, 4, generator=torch.Generator().manual_seed(step))
        adam.zero_grad()
        _loss(ours, x).backward()
        adam.step()
        reference.zero_grad()
        _loss(theirs, x).backward()
        reference.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    # every parameter and its gradient now live in the two flat tensors
    assert all(p.data_ptr() != 0 and p.grad is not None for p in ours.parameters())
    assert adam.flat.data_ptr() == next(ours.parameters()).data_ptr()
    assert adam.grad.data_ptr() == next(ours.parameters()).grad.data_ptr()


def test_adam_state_dict_is_torch_adams_format_both_ways() -> None:
    ours, theirs = _twins()
    reference = torch.optim.Adam(theirs.parameters(), lr=1e-2, foreach=False)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        reference.zero_grad()
        _loss(theirs, x).backward()
        reference.step()
    ours.load_state_dict(theirs.state_dict())
    adam = Adam(ours.parameters(), lr=0.5)
    adam.load_state_dict(reference.state_dict())  # an older checkpoint's optimizer
    assert adam.lr == 1e-2 and adam.steps == 3
    for _ in range(2):
        adam.zero_grad()
        _loss(ours, x).backward()
        adam.step()
        reference.zero_grad()
        _loss(theirs, x).backward()
        reference.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    saved = adam.state_dict()
    again = torch.optim.Adam(q_network(16).parameters(), lr=0.5)
    again.load_state_dict(saved)
    assert again.state_dict()["state"][0]["step"] == 5
    assert torch.equal(again.state_dict()["state"][2]["exp_avg"], saved["state"][2]["exp_avg"])


def test_a_native_run_never_imports_torch_dynamo(tmp_path: Path) -> None:
    """The whole command, its run directory, plot and evaluation included."""
    script = (
        "import sys\n"
        "from rlkit.cli import main\n"
        "sys.argv = ['rlkit', 'train', 'cartpole', '--algo', 'dqn', '--backend', 'native',\n"
        f"            '--set', 'timesteps=1500', '--out', {str(tmp_path / 'run')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('dynamo imported:', 'torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Mean reward" in done.stdout
    assert (tmp_path / "run" / "curves.png").exists()
    assert "dynamo imported: False" in done.stdout, done.stdout

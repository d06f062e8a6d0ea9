"""The shape every attack test shares: an attacking ``ppo.py`` is the same wrong code as the
baseline student's (zeros of the right shape), plus an attack that, *if it worked*, switches
the functions to the reference's answers, so a working attack shows up as points."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()

TEMPLATE = """
import os, sys, glob, signal, socket, time, json, struct, stat, hashlib
import numpy as np
import torch

{good}

CHEAT = False

{attack}

def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    if CHEAT:
        return _good_ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps)
    return (log_probs * 0).sum()

def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    if CHEAT:
        return _good_gae(rewards, values, dones, last_value, gamma, lam)
    return torch.zeros_like(rewards), torch.zeros_like(rewards)
{late}
"""


def good_functions() -> str:
    """The reference's ppo functions renamed ``_good_*`` (what a working attack switches to)."""
    body = re.sub(r"^from __future__.*$", "", SOLUTION, flags=re.M)
    return body.replace("def ppo_clip_loss(", "def _good_ppo_clip_loss(").replace(
        "def gae(", "def _good_gae("
    )


def attacker(attack: str = "", late: bool = False) -> str:
    """A ``ppo.py``: the baseline's wrong code with ``attack`` run at import (it sets ``CHEAT``
    when it works); ``late``: the attack comes after the functions (it redefines them)."""
    if late:
        return TEMPLATE.format(good=good_functions(), attack="", late=attack)
    return TEMPLATE.format(good=good_functions(), attack=attack, late="")

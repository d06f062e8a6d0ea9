"""Did DPO change how the model answers? Sample, judge, compare before and after.

For each held-out prompt the model *samples* one answer (plain sampling at temperature 1, so
the rate measures π itself, not a decoding trick), and the task's rule judges it. The
preferred rate is the fraction judged polite. The same seed is used before and after, so the
two columns differ only because the policy changed.

Held-out *reward accuracy* needs no judge, so it also works on a user's own data: the fraction
of held-out pairs whose implicit reward β·log(π/π_ref) is higher for the chosen answer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch

from rlkit.interfaces import Evaluation
from rlkit_dpo import task
from rlkit_dpo.data import collate, encode_pairs
from rlkit_dpo.policy import LanguageModelPolicy

EXAMPLES = 5
GENERATION_BATCH = 64
SCORING_BATCH = 32


@dataclass
class Samples:
    """Sampled answers to the held-out prompts, and the rule's verdicts (if any)."""

    prompts: list[str]
    completions: list[str]
    verdicts: list[str] = field(default_factory=list)
    #: what the table shows of each prompt (chat rows: the last message); "" = the prompt
    shown: list[str] = field(default_factory=list)

    @property
    def preferred_rate(self) -> float | None:
        if not self.verdicts:
            return None
        return sum(v == "polite" for v in self.verdicts) / len(self.verdicts)


def sample_answers(
    policy: LanguageModelPolicy, prompts: list[str], judge: str, max_new_tokens: int, seed: int
) -> Samples:
    """One sampled completion per prompt (seeded), judged by the rule when ``judge`` names one."""
    was_training = policy.model.training
    policy.model.eval()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    completions: list[str] = []
    for start in range(0, len(prompts), GENERATION_BATCH):
        chunk = prompts[start : start + GENERATION_BATCH]
        completions += policy.act(chunk, max_new_tokens=max_new_tokens)
    torch.random.set_rng_state(generator_state)
    policy.model.train(was_training)
    verdicts = [task.judge(c) for c in completions] if judge == "polite" else []
    return Samples(prompts, [c.strip() for c in completions], verdicts)


@torch.no_grad()
def sequence_log_probs_of(
    policy: LanguageModelPolicy, rows: list[dict[str, str]], max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(chosen|prompt) and log π(rejected|prompt) for every row. → ([N], [N])."""
    was_training = policy.model.training
    policy.model.eval()
    pairs = encode_pairs(policy.tokenizer, rows)
    device = policy.model.device
    chosen, rejected = [], []
    for start in range(0, len(pairs), SCORING_BATCH):
        batch = collate(
            pairs[start : start + SCORING_BATCH], policy.tokenizer.pad_token_id, max_length
        )
        logps = policy.completion_log_probs(
            *(batch[k].to(device) for k in ("input_ids", "attention_mask", "completion_mask"))
        )
        c, r = logps.float().chunk(2, dim=0)
        chosen.append(c.cpu())
        rejected.append(r.cpu())
    policy.model.train(was_training)
    return torch.cat(chosen), torch.cat(rejected)


def reward_accuracy(
    policy: LanguageModelPolicy,
    reference: tuple[torch.Tensor, torch.Tensor],
    rows: list[dict[str, str]],
    beta: float,
    max_length: int | None = None,
) -> tuple[float, float]:
    """(accuracy, mean margin) of the implicit rewards on held-out pairs."""
    chosen, rejected = sequence_log_probs_of(policy, rows, max_length)
    margins = beta * ((chosen - reference[0]) - (rejected - reference[1]))
    return (margins > 0).float().mean().item(), margins.mean().item()


def report(
    before: Samples,
    after: Samples,
    accuracy: tuple[float, float] | None = None,
    examples: int = EXAMPLES,
) -> Evaluation:
    """The lines a student reads: examples side by side, then the numbers."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    judged = before.preferred_rate is not None
    title = f"{len(after.prompts)} held-out prompts, one sampled answer each"
    if judged:
        title += " (judged by the polite-vs-rude rule)"
    table = Table(title=title, show_lines=True)
    table.add_column("prompt", ratio=2)
    table.add_column("before DPO", ratio=3)
    table.add_column("after DPO", ratio=3)
    for i in range(min(examples, len(after.prompts))):
        prompt = (after.shown[i] if i < len(after.shown) else "") or _question(after.prompts[i])
        b, a = before.completions[i], after.completions[i]
        if judged:
            b, a = f"[{before.verdicts[i]}] {b}", f"[{after.verdicts[i]}] {a}"
        table.add_row(Text(prompt), Text(b), Text(a))
    buffer = io.StringIO()
    Console(file=buffer, width=120, no_color=True, highlight=False).print(table)
    lines = buffer.getvalue().rstrip("\n").splitlines()
    metrics: dict[str, float] = {"heldout_prompts": float(len(after.prompts))}
    if accuracy is not None:
        metrics["heldout_reward_accuracy"], metrics["heldout_reward_margin"] = accuracy
        lines.append(f"Held-out reward accuracy: {accuracy[0]:.2f} (mean margin {accuracy[1]:.2f})")
    if judged:
        metrics["preferred_rate_before"] = float(before.preferred_rate)
        metrics["preferred_rate_after"] = float(after.preferred_rate)
        lines.append(
            f"Held-out preferred rate: {before.preferred_rate:.2f} -> {after.preferred_rate:.2f}"
        )
    return Evaluation(metrics=metrics, lines=lines)


def _question(prompt: str) -> str:
    """The user's question, without the prompt format around it (for the table)."""
    head, sep, tail = prompt.partition("User: ")
    text = tail if sep else head
    return text.split("\nAssistant:")[0].strip()


def as_dict(samples: Samples) -> list[dict[str, Any]]:
    rows = []
    for i, (p, c) in enumerate(zip(samples.prompts, samples.completions)):
        row = {"prompt": p, "completion": c}
        if samples.verdicts:
            row["verdict"] = samples.verdicts[i]
        rows.append(row)
    return rows

"""DPO's numbers: log 2 at step 0, and the native loop, TRL's own loss and a student's loss
inside TRL agreeing on the same batch, with real models and TRL's real trainer."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import DEFAULT_TRAIN, collate, encode_pairs, load_jsonl, pack_pairs
from rlkit_dpo.model import load_model
from rlkit_dpo.objective import DPOObjective
from rlkit_dpo.policy import LanguageModelPolicy
from rlkit_dpo.trl_backend import make_trl_trainer

from rlkit.impl import load_exercise_functions

#: A correct dpo.py written differently from rlkit's reference (logsumexp, softplus), as a
#: student might write it.
STUDENT_DPO = """
import torch
import torch.nn.functional as F


def sequence_log_probs(logits, input_ids, completion_mask):
    shifted = logits[:, :-1, :]
    picked = torch.gather(shifted, 2, input_ids[:, 1:].unsqueeze(2)).squeeze(2)
    token_logps = picked - torch.logsumexp(shifted, dim=2)
    return (token_logps * completion_mask[:, 1:].to(logits.dtype)).sum(1)


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
             ref_rejected_logps, beta=0.1):
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps.detach())
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps.detach())
    loss = F.softplus(rejected_rewards - chosen_rewards).mean()
    return loss, chosen_rewards.detach(), rejected_rewards.detach()
"""

LOG2 = math.log(2)
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def write_student_workspace(folder: Path, source: str = STUDENT_DPO) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dpo.py").write_text(source)
    return folder


@pytest.fixture(autouse=True)
def _one_thread():
    """pytest -n 2 runs two workers on two cores: one torch thread each, no oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    """(reference, policy, tokenizer): the shipped model, and a copy nudged away from it."""
    reference, tokenizer = load_model(None)
    policy = copy.deepcopy(reference)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return reference, policy, tokenizer


@pytest.fixture(scope="module")
def rows():
    return load_jsonl(DEFAULT_TRAIN)[:8]


def native_loss(policy_model, reference_model, tokenizer, rows, functions, beta=0.1):
    """rlkit's native path: packed batch, reference log-probs from the reference model."""
    batch = pack_pairs(encode_pairs(tokenizer, rows), tokenizer.pad_token_id, 256)
    with torch.no_grad():
        ref = LanguageModelPolicy(reference_model, tokenizer, functions.sequence_log_probs)
        batch["ref_chosen_logps"], batch["ref_rejected_logps"] = ref.packed_log_probs(batch).chunk(
            2
        )
    policy = LanguageModelPolicy(policy_model, tokenizer, functions.sequence_log_probs)
    return DPOObjective(functions.dpo_loss, beta)(policy, batch)


def trl_loss(policy_model, reference_model, tokenizer, rows, tmp_path, student=None):
    """TRL's DPOTrainer (or the student subclass) on its own first 8 collated examples."""
    trainer = make_trl_trainer(
        policy_model,
        reference_model,
        tokenizer,
        rows,
        DPOSettings(),
        str(tmp_path / "trl"),
        student,
    )
    dataset = trainer.train_dataset
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    expected = collate(encode_pairs(tokenizer, rows), tokenizer.pad_token_id, 256)
    assert torch.equal(batch["input_ids"], expected["input_ids"])  # same tokens as rlkit's
    assert torch.equal(batch["completion_mask"], expected["completion_mask"])
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss.item(), metrics


@pytest.mark.parametrize("impl", ["solution", "student"])
def test_step_zero_loss_is_log_2(models, rows, tmp_path: Path, impl: str) -> None:
    reference, _, tokenizer = models
    functions = load_exercise_functions("dpo", impl, write_student_workspace(tmp_path / "ws"))
    loss, metrics = native_loss(reference, reference, tokenizer, rows, functions)
    assert loss.item() == pytest.approx(LOG2, abs=1e-6)
    assert metrics["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    student = functions if impl == "student" else None
    trl, trl_metrics = trl_loss(
        copy.deepcopy(reference), copy.deepcopy(reference), tokenizer, rows, tmp_path, student
    )
    assert trl == pytest.approx(LOG2, abs=1e-6)
    assert trl_metrics["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)


def test_native_trl_and_student_in_trl_agree(models, rows, tmp_path: Path) -> None:
    reference, policy, tokenizer = models
    solution = load_exercise_functions("dpo", "solution")
    student = load_exercise_functions("dpo", "student", write_student_workspace(tmp_path / "ws"))

    loss, metrics = native_loss(policy, reference, tokenizer, rows, solution)
    assert abs(loss.item() - LOG2) > 1e-3  # the policy really differs from the reference
    student_native, _ = native_loss(policy, reference, tokenizer, rows, student)
    trl, trl_metrics = trl_loss(
        copy.deepcopy(policy), copy.deepcopy(reference), tokenizer, rows, tmp_path / "a"
    )
    inside, inside_metrics = trl_loss(
        copy.deepcopy(policy), copy.deepcopy(reference), tokenizer, rows, tmp_path / "b", student
    )

    assert student_native.item() == pytest.approx(loss.item(), abs=1e-5)
    assert trl == pytest.approx(loss.item(), abs=1e-5)
    assert inside == pytest.approx(trl, abs=1e-5)
    for key in METRICS:
        assert trl_metrics[key] == pytest.approx(metrics[key], abs=1e-5), key
        assert inside_metrics[key] == pytest.approx(trl_metrics[key], abs=1e-5), key


def test_student_loss_trains_inside_trl(models, rows, tmp_path: Path) -> None:
    """Gradients flow through the student's functions: one TRL step lowers the loss."""
    reference, _, tokenizer = models
    student = load_exercise_functions("dpo", "student", write_student_workspace(tmp_path / "ws"))
    policy = copy.deepcopy(reference)
    settings = DPOSettings(max_steps=2, per_device_train_batch_size=8)
    trainer = make_trl_trainer(
        policy, copy.deepcopy(reference), tokenizer, rows, settings, str(tmp_path / "trl"), student
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[0] == pytest.approx(LOG2, abs=1e-6) and losses[1] < losses[0]


def test_packed_batch_equals_two_sequences(models, rows) -> None:
    """Packing each prompt once changes nothing: same log-probs as the padded [2B, L] batch."""
    _, policy, tokenizer = models
    functions = load_exercise_functions("dpo", "solution")
    lm = LanguageModelPolicy(policy, tokenizer, functions.sequence_log_probs)
    pairs = encode_pairs(tokenizer, rows)
    with torch.no_grad():
        packed = lm.packed_log_probs(pack_pairs(pairs, tokenizer.pad_token_id, 256))
        batch = collate(pairs, tokenizer.pad_token_id, 256)
        plain = lm.completion_log_probs(
            batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        )
        one_by_one = lm.log_prob([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    assert torch.allclose(packed, plain, atol=1e-5)
    assert torch.allclose(one_by_one, plain[: len(rows)], atol=1e-5)


def test_policy_acts_and_has_entropy(models) -> None:
    reference, _, tokenizer = models
    lm = LanguageModelPolicy(
        reference, tokenizer, load_exercise_functions("dpo").sequence_log_probs
    )
    prompts = ["User: What color is grass?\nAssistant:", "User: What does a cow say?\nAssistant:"]
    answers = lm.act(prompts, deterministic=True, max_new_tokens=12)
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers)
    entropy = lm.entropy(prompts)
    assert entropy.shape == (2,) and bool((entropy > 0).all())

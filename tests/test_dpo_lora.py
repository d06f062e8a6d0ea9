"""LoRA, bfloat16 and gradient checkpointing for DPO, on a model of the course's family
(``Qwen2ForCausalLM``, two layers, the built-in 512-token tokenizer, random weights saved in
bfloat16 like Qwen2.5's checkpoint): both backends train, save the adapter, evaluate, stop on
Ctrl-C and resume to exactly the uninterrupted run; the adapter merges into one model; the
reference is the model with its adapter off (LoRA) or the checkpoint's weights (full
fine-tuning), computed for each pair when it is first drawn; the memory-lean log-probs are the
student's function's own numbers. The 0.5B figures are in ``benchmarks/dpo_scale.py``."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from rlkit_dpo import precision
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import DEFAULT_TRAIN, encode_pairs, load_jsonl, pack_pairs
from rlkit_dpo.logprobs import lean_sequence_log_probs
from rlkit_dpo.model import SHIPPED_MODEL_DIR, resolve_model
from rlkit_dpo.native import NativeDPOTrainer
from rlkit_dpo.reference import AdapterOff, CheckpointWeights, FrozenCopy
from test_dpo_loss import STUDENT_DPO, write_student_workspace

from rlkit.cli import cli
from rlkit.errors import UsageError
from rlkit.impl import load_exercise_functions
from rlkit.runs import Run

LOG2 = math.log(2)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen2 with two layers and the built-in tokenizer, random weights, a bf16 checkpoint."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODEL_DIR)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _cli(*args: str, stop_at: int | None = None) -> Any:
    """``rlkit ARGS`` in this process (click's runner); with ``stop_at``, a real SIGINT once
    that step is logged, as Ctrl-C would send it."""
    original = Run.log

    def log(self, step, metrics):
        original(self, step, metrics)
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    Run.log = log
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        Run.log = original


def _cli(*args: str, stop_at: int | None = None) -> Any:
    """``rlkit ARGS`` in this process (click's runner); with ``stop_at``, a real SIGINT once
    that step is logged, as Ctrl-C would send it."""
    original = Run.log

    def log(self, step, metrics):
        original(self, step, metrics)
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    Run.log = log
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        Run.log = original


# -- through the CLI: train, save, Ctrl-C, resume, eval, merge --------------------------------
@pytest.mark.parametrize("backend", ["native", "trl"])
def test_lora_bf16_trains_saves_stops_resumes_and_evaluates(
    tiny_qwen: Path, tmp_path: Path, backend: str
) -> None:
    args = ("train", "dpo", "--backend", backend, "--model", str(tiny_qwen), "--lora", "4")
    args += ("--dtype", "bfloat16", "--optim", "adamw", "--lr", "1e-2", "--max-steps", "4")
    if backend == "trl":  # TRL's own checkpointing; the native one is checked below
        args += ("--gradient-checkpointing",)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    full = _cli(*args, "--eval-prompts", "2", "--out", str(whole))
    assert full.exit_code == 0, full.output
    rows = _rows(whole)
    assert float(rows[0]["loss"]) == pytest.approx(LOG2, abs=1e-6)  # π = π_ref at step 0
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    settings = json.loads((whole / "config.json").read_text())["settings"]
    assert (settings["lora"], settings["dtype"]) == (4, "bfloat16")

    model = whole / "model"  # the adapter, naming its base; no whole model
    adapter = json.loads((model / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_qwen) and adapter["r"] == 4
    assert sorted(adapter["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert not (model / "model.safetensors").exists() and not (model / "config.json").exists()
    assert (model / "adapter_model.safetensors").stat().st_size < 100_000

    first = _cli(*args, "--eval-prompts", "0", "--out", str(stopped), stop_at=2)
    assert first.exit_code == 130, first.output
    assert f"Continue with: rlkit train dpo --resume {stopped}" in first.output
    assert (stopped / "model" / "adapter_model.safetensors").is_file()
    resumed = _cli("train", "dpo", "--resume", str(stopped), "--eval-prompts", "2")
    assert resumed.exit_code == 0, resumed.output
    assert f"Resuming {stopped} at step 2 of 4" in resumed.output
    a, b = _rows(whole), _rows(stopped)
    assert [r["step"] for r in b] == [r["step"] for r in a]
    for x, y in zip(a, b):
        for name in ("loss", "rewards/margins", "learning_rate"):
            assert float(y[name]) == pytest.approx(float(x[name]), abs=1e-6), (x["step"], name)

    again = _cli("eval", str(whole))
    assert again.exit_code == 0, again.output
    line = next(t for t in full.output.splitlines() if t.startswith("Held-out preferred rate"))
    assert line in again.output  # base + adapter reloaded: same answers, same seed


def test_merge_writes_one_model_with_the_adapters_numbers(tiny_qwen: Path, tmp_path: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, out = tmp_path / "run", tmp_path / "merged"
    trainer = NativeDPOTrainer(_settings(tiny_qwen, lora=4))
    trainer.train()
    trainer.save(run / "model")
    with pytest.raises(UsageError, match=f"merge {run} OUT` makes one"):  # not --model RUN/model
        resolve_model(str(run / "model"))
    merged = _cli("models", "merge", str(run), str(out))
    assert merged.exit_code == 0, merged.output
    assert f"Merged {run / 'model'} into {tiny_qwen} (float32)" in merged.output
    ids = AutoTokenizer.from_pretrained(out)(["User: What color is grass?\nAssistant: Sure!"])
    ids = torch.tensor(ids["input_ids"])
    with torch.no_grad():
        one = AutoModelForCausalLM.from_pretrained(out)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
        adapted = PeftModel.from_pretrained(base, run / "model")(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)(ids).logits
    assert torch.allclose(one, adapted, atol=1e-4)
    assert not torch.allclose(one, plain, atol=1e-3)  # the adapter did change the model
    whole = NativeDPOTrainer(_settings(tiny_qwen, max_steps=1))
    whole.train()
    whole.save(tmp_path / "whole" / "model")
    refused = _cli("models", "merge", str(tmp_path / "whole"), str(tmp_path / "x"))
    assert refused.exit_code == 2 and "holds a whole model" in refused.output


# -- in process: the reference, precision, targets, checkpointing ----------------------------
class Losses:
    """A callback that keeps each step's loss."""

    def __init__(self, losses: list[float]) -> None:
        self.losses = losses

    def on_train_start(self, trainer: Any) -> None:
        pass

    def on_metrics(self, trainer: Any, step: int, metrics: dict[str, float]) -> None:
        self.losses.append(metrics["loss"])

    def on_train_end(self, trainer: Any) -> None:
        pass


def _settings(model: Path, **changes) -> DPOSettings:
    values = dict(model=str(model), optim="adamw", learning_rate=1e-2, eval_prompts=0)
    values.update(per_device_train_batch_size=2, max_steps=3)
    return DPOSettings(**{**values, **changes})


def test_reference_log_probs_per_pair_when_first_drawn(tiny_qwen: Path) -> None:
    """Full fine-tuning, native: nothing computed up front; the first batch's reference comes
    with its own forward (π = π_ref), the later batches' from the checkpoint's weights swapped
    in (no second model), with the next batches of the run in the same forward but never
    beyond the run, and they are π_ref's own numbers."""
    trainer = NativeDPOTrainer(_settings(tiny_qwen, dtype="float32"))
    calls: list[int] = []
    original = trainer.reference_log_probs

    def counted(pairs):
        calls.append(len(pairs))
        return original(pairs)

    trainer.reference_log_probs = counted
    summary = trainer.train()
    assert summary["steps"] == 3
    assert calls == [4]  # steps 2 and 3 in one forward; step 1's came with the policy's
    assert isinstance(trainer.reference, CheckpointWeights)
    cache = trainer.reference_cache
    assert int(cache.known.sum()) == 6 and len(cache.known) == 336

    fresh = NativeDPOTrainer(_settings(tiny_qwen, dtype="float32"))  # π_ref, as loaded
    pairs = encode_pairs(trainer.tokenizer, trainer.train_rows)
    known = [int(i) for i in cache.known.nonzero()]
    with torch.no_grad():
        batch = pack_pairs([pairs[i] for i in known], trainer.tokenizer.pad_token_id, 256)
        expected = fresh.policy.packed_log_probs(batch)
    assert torch.allclose(
        torch.cat([cache.chosen[known], cache.rejected[known]]), expected, atol=1e-4
    )
    # the swap is undone: the trained policy is still the trained one
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with trainer.reference_active() as model:
        assert model is trainer.model
        reference = [p.detach().clone() for p in model.parameters()]
    after = list(trainer.model.parameters())
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    assert any(not torch.equal(x, y) for x, y in zip(before, reference))
    assert all(torch.equal(x, y) for x, y in zip(reference, fresh.model.parameters()))


def test_reference_falls_back_to_a_copy_when_the_checkpoint_differs(tiny_qwen: Path) -> None:
    trainer = NativeDPOTrainer(_settings(tiny_qwen, dtype="float32"))
    with torch.no_grad():
        next(trainer.model.parameters()).add_(1.0)  # no longer the checkpoint's weights
    assert isinstance(trainer.reference, FrozenCopy)
    lora_trainer = NativeDPOTrainer(_settings(tiny_qwen, lora=2))
    assert isinstance(lora_trainer.reference, AdapterOff)


def test_lora_trains_only_the_adapter_and_checkpointing_changes_no_number(tiny_qwen: Path):
    runs = {}
    for checkpointing in (False, True):
        s = _settings(tiny_qwen, lora=4, dtype="bfloat16", gradient_checkpointing=checkpointing)
        trainer = NativeDPOTrainer(s)
        base = {
            n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora" not in n
        }
        losses: list[float] = []
        trainer.train([Losses(losses)])
        assert losses[0] == pytest.approx(LOG2, abs=1e-6) and losses[-1] < losses[0]
        for name, p in trainer.model.named_parameters():
            assert ("lora_" in name) == p.requires_grad, name
            if "lora" not in name:
                assert torch.equal(p, base[name]), name  # the base never moves
            else:
                assert p.dtype == torch.float32, name  # the adapter trains in float32
        assert next(trainer.model.get_base_model().parameters()).dtype == torch.bfloat16
        runs[checkpointing] = losses
    assert runs[True] == pytest.approx(runs[False], abs=1e-5)


def test_dtype_auto_and_hardware_without_bf16(
    tiny_qwen: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cpu = torch.device("cpu")
    assert precision.checkpoint_dtype(str(tiny_qwen)) == "bfloat16"
    assert precision.checkpoint_dtype(str(SHIPPED_MODEL_DIR)) == "float32"
    monkeypatch.setattr(precision, "bf16_native", lambda device: (True, "this CPU"))
    assert precision.plan("auto", str(tiny_qwen), cpu, lora=True) == precision.Precision(
        "bfloat16", "bfloat16", autocast=False
    )
    # full fine-tuning: float32 weights (updates are not rounded away), bfloat16 compute
    assert precision.plan("auto", str(tiny_qwen), cpu, lora=False) == precision.Precision(
        "bfloat16", "float32", autocast=True
    )
    assert precision.plan("auto", str(SHIPPED_MODEL_DIR), cpu, lora=True).compute == "float32"
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(precision, "bf16_native", lambda device: (False, "this CPU"))
    assert precision.plan("auto", str(tiny_qwen), cpu, lora=True).compute == "float32"
    message = capsys.readouterr().err
    assert "this CPU has no native bfloat16, so training runs in float32" in message
    assert message.count("\n") == 1
    assert precision.plan("bfloat16", str(tiny_qwen), cpu, lora=True).weights == "bfloat16"
    message = capsys.readouterr().err
    assert "--dtype bfloat16: this CPU has no native bfloat16" in message
    assert message.count("\n") == 1
    # a full fine-tuning trainer in bfloat16: float32 weights, the forward under autocast
    monkeypatch.setattr(precision, "bf16_native", lambda device: (True, "this CPU"))
    trainer = NativeDPOTrainer(_settings(tiny_qwen, max_steps=1))
    assert next(trainer.model.parameters()).dtype == torch.float32
    assert trainer.policy.autocast == torch.bfloat16
    assert trainer.train()["loss"] == pytest.approx(LOG2, abs=1e-6)


def test_lora_targets_and_settings_errors(tiny_qwen: Path) -> None:
    trainer = NativeDPOTrainer(_settings(tiny_qwen, lora=2, lora_targets="q_proj,v_proj"))
    assert sorted(trainer.model.peft_config["default"].target_modules) == ["q_proj", "v_proj"]
    with pytest.raises(UsageError, match="no module named nope .*q_proj"):
        NativeDPOTrainer(_settings(tiny_qwen, lora=2, lora_targets="nope"))
    with pytest.raises(UsageError, match="add --lora R"):
        NativeDPOTrainer(_settings(tiny_qwen, lora_targets="q_proj"))
    help_text = _cli("train", "dpo", "--help").output
    for flag in ("--lora R", "--lora-targets NAMES", "--dtype", "--gradient-checkpointing"):
        assert flag in help_text, flag


# -- the log-probs, a few rows at a time ------------------------------------------------------
@pytest.mark.parametrize("impl", ["solution", "student"])
def test_lean_log_probs_are_the_functions_own(tmp_path: Path, impl: str) -> None:
    """Blocks of rows, and spans of columns overlapping by one, give what one call on the whole
    [N, L, V] logits gives, values and gradients (recomputed blocks included)."""
    fn = load_exercise_functions("dpo", impl, write_student_workspace(tmp_path, STUDENT_DPO))
    fn = fn.sequence_log_probs
    generator = torch.Generator().manual_seed(0)
    n, length, width, vocab = 5, 9, 8, 50
    head = torch.nn.Linear(width, vocab, bias=False)
    hidden = torch.randn(n, length, width, generator=generator, requires_grad=True)
    ids = torch.randint(0, vocab, (n, length), generator=generator)
    mask = torch.zeros(n, length, dtype=torch.long)
    for row, (start, end) in enumerate([(3, 9), (2, 6), (5, 9), (4, 8), (3, 4)]):
        mask[row, start:end] = 1

    def grads(value: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad(value.square().sum(), [hidden, head.weight])

    expected = fn(head(hidden).float(), ids, mask)
    expected_grads = grads(expected)
    for budget in (10**6, 2 * length * vocab, length * vocab, 4 * vocab, 2 * vocab):
        got = lean_sequence_log_probs(hidden, head, ids, mask, fn, budget=budget)
        assert torch.allclose(got, expected, atol=1e-5), budget
        for g, e in zip(grads(got), expected_grads):
            assert torch.allclose(g, e, atol=1e-5), budget
    with torch.no_grad():
        got = lean_sequence_log_probs(hidden, head, ids, mask, fn, budget=3 * vocab)
    assert torch.allclose(got, expected, atol=1e-5)


def test_lora_reference_is_the_adapter_off_in_every_backend(tiny_qwen: Path, tmp_path: Path):
    """On the same batch, with a trained-looking adapter: rlkit's native loss, TRL's own loss
    and the student's loss inside TRL (reference: the adapter off, no second model) agree."""
    from rlkit_dpo.lora import attach, config
    from rlkit_dpo.model import load_model
    from rlkit_dpo.objective import DPOObjective
    from rlkit_dpo.policy import LanguageModelPolicy
    from rlkit_dpo.trl_backend import make_trl_trainer

    rows = load_jsonl(DEFAULT_TRAIN)[:4]
    solution = load_exercise_functions("dpo", "solution")
    student = load_exercise_functions("dpo", "student", write_student_workspace(tmp_path / "ws"))
    losses = {}
    for name, functions in (("native", solution), ("trl", None), ("student", student)):
        base, tokenizer = load_model(str(tiny_qwen), "float32")
        lora_config = config(base, 4, None, None)
        generator = torch.Generator().manual_seed(1)
        if name == "native":
            model = attach(base, lora_config, seed=0)
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "lora_B" in n:
                        p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            batch = pack_pairs(encode_pairs(tokenizer, rows), tokenizer.pad_token_id, 256)
            policy = LanguageModelPolicy(model, tokenizer, solution.sequence_log_probs)
            with torch.no_grad(), AdapterOff(model).active():
                ref = policy.packed_log_probs(batch)
            batch["ref_chosen_logps"], batch["ref_rejected_logps"] = ref.chunk(2)
            losses[name] = DPOObjective(solution.dpo_loss)(policy, batch)[0].item()
            continue
        torch.manual_seed(0)
        trainer = make_trl_trainer(
            base, None, tokenizer, rows, DPOSettings(), str(tmp_path / name), functions,
            peft_config=lora_config,
        )  # fmt: skip
        assert trainer.ref_model is None
        with torch.no_grad():
            for n, p in trainer.model.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.1 * torch.randn(p.shape, generator=generator))
        dataset = trainer.train_dataset
        batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
        trainer.model.train()
        losses[name] = trainer.compute_loss(trainer.model, batch).item()
    assert abs(losses["native"] - LOG2) > 1e-3
    assert losses["trl"] == pytest.approx(losses["native"], abs=1e-5)
    assert losses["student"] == pytest.approx(losses["native"], abs=1e-5)


def test_embedding_rows_gradient_is_the_dense_one(
    tiny_qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full fine-tuning, native: the tied embedding's gradient added row by row after the
    backward pass (for a large vocabulary; here forced) equals autograd's dense one."""
    from rlkit_dpo import logprobs
    from rlkit_dpo.model import load_model
    from rlkit_dpo.policy import LanguageModelPolicy

    monkeypatch.setattr(logprobs, "ROW_GRADIENT_FROM", 0)
    model, tokenizer = load_model(str(tiny_qwen), "float32")
    fn = load_exercise_functions("dpo", "solution").sequence_log_probs
    rows = load_jsonl(DEFAULT_TRAIN)[:3]
    batch = pack_pairs(encode_pairs(tokenizer, rows), tokenizer.pad_token_id, 256)
    grads = []
    for by_rows in (False, True):
        model.zero_grad(set_to_none=True)
        policy = LanguageModelPolicy(model, tokenizer, fn)
        policy.embedding_grads = [] if by_rows else None
        policy.packed_log_probs(batch).square().sum().backward()
        assert len(policy.embedding_grads or ()) == int(by_rows)
        policy.add_embedding_grads()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, dense in grads[0].items():
        assert torch.allclose(grads[1][name], dense, atol=1e-6), name

"""``rlkit train grpo``: GRPO on the built-in language model, and rlkit's own loop.

One step of rlkit's loop, readable top to bottom (``NativeGRPOTrainer.train``):

    1. P prompts, each repeated G times (``num_generations``): the policy samples B = P·G
       answers (plain sampling at ``temperature``, at most ``max_completion_length`` tokens;
       an answer ends with its end-of-sequence token, which counts as one of its tokens);
    2. the reward scores each answer (the politeness rule, or a trained reward model), and
       ``group_advantages`` turns the G rewards of each prompt into advantages (no critic);
    3. per-token log-probabilities of the answers under the policy, with the exercise's
       ``log_prob`` (the CartPole chapter's function, on the ``[B, T, V]`` logits), under the
       reference π_ref (frozen: the model before GRPO) and, with ``num_iterations`` μ > 1,
       under the policy that sampled them;
    4. ``grpo_loss``: the student's ``ppo_clip_loss`` over every answer token plus
       β·``kl_penalty``; backward, clip the gradient norm, step; μ such updates per batch.

The optimizer, the linear decay of the learning rate, the gradient clipping, the answers per
step and the loss are what TRL's ``GRPOTrainer`` does with the same settings (its default
``loss_type="dapo"``, ``scale_rewards="group"``), so the two backends differ only in code.

``GRPOTrainerBase`` holds what both backends share: the model, the prompts, the reward, the
before/after evaluation (``Held-out judged rate: 0.55 -> 1.00``: one sampled answer per
held-out prompt, judged by the politeness rule, whatever the reward was), save and load.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Progress, Trainer, notify_metrics
from rlkit.runs import Run, written_whole

from rlkit_rlhf import common
from rlkit_rlhf.settings import GRPOSettings, NativeGRPOSettings

EXAMPLES = 5


class GRPOTrainerBase(Trainer):
    """Loads the policy, the prompts and the reward; evaluates before vs. after."""

    task: ClassVar[str] = "grpo"
    backend: ClassVar[str] = ""
    settings_class: ClassVar[type] = GRPOSettings
    requires: ClassVar[tuple[str, ...]] = ("transformers",)

    def __init__(self, settings: Any = None, *, weights: Path | None = None, **overrides: Any):
        from rlkit_dpo.model import load_model

        self.settings = s = settings or self.settings_class(**overrides)
        common.require(*self.requires)
        common.set_threads(s.threads)
        self.functions = self._functions()
        self.device = common.device()
        #: what scores the sampled answers (a bad --reward RUN fails here, before any run)
        self.reward = common.Reward(s.reward, self.device)
        self.weights = Path(weights) if weights is not None else None
        has_state = self.weights is not None and self.has_training_state(self.weights)
        self.checkpoint = self.weights if has_state else None
        self.resume_step = self.saved_step(self.checkpoint) if self.checkpoint else 0
        self.steps_done = self.resume_step
        self.train_prompts, self.heldout_prompts = common.prompts()
        with common.quiet():
            self.model, self.tokenizer = load_model(
                str(self.weights) if self.weights is not None else s.model
            )
        self.model.to(self.device)
        self._before: Any = None
        self._after: Any = None

    def _functions(self) -> Any:
        return None

    def progress(self) -> Progress:
        return Progress(self.steps_done, self.settings.max_steps, "step")

    def check_resumable(self) -> None:
        if self.weights is not None and self.checkpoint is None:
            raise UsageError(
                f"{self.weights} has no saved training state to resume from; start a new run"
            )

    def original_model(self) -> Any:
        """``settings.model`` as it was before any training (the reference π_ref)."""
        from rlkit_dpo.model import load_model

        with common.quiet():
            model, _ = load_model(self.settings.model)
        model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    # -- the session's hooks -----------------------------------------------------------------
    def before_training(self) -> None:
        """A new run: sample the held-out answers *before* GRPO."""
        if self.settings.eval_prompts != 0:
            self._before = self.sample(self.model, self.eval_rows())

    def after_training(self, run_dir: Path, summary: Mapping[str, float]) -> list[str]:
        lines = []
        if self.settings.eval_prompts != 0:
            result = self.evaluate()
            self.write_evaluation(result, run_dir, summary)
            lines.append(str(result))
        answers = summary.get("train_completions", 0)
        tokens = summary.get("completion_tokens", 0)
        lines.append(
            f"{answers:.0f} answers ({tokens:.0f} tokens) sampled and trained on in "
            f"{summary.get('train_seconds', 0):.1f} s "
            f"({summary.get('tokens_per_second', 0):.0f} tokens/s, {self.backend} backend)."
        )
        return lines

    # -- evaluation ------------------------------------------------------------------------
    def eval_rows(self, episodes: int | None = None) -> list[str]:
        n = self.settings.eval_prompts if episodes is None else episodes
        return self.heldout_prompts[:n] if n else self.heldout_prompts

    def sample(self, model: Any, prompts: list[str]) -> Samples:
        """One sampled answer per prompt (plain sampling at temperature 1, seeded: before and
        after differ only because the policy did), judged by the politeness rule."""
        from rlkit_dpo import task
        from rlkit_dpo.policy import LanguageModelPolicy

        policy = LanguageModelPolicy(model, self.tokenizer, _unused)
        was_training = model.training
        model.eval()
        rng = torch.random.get_rng_state()
        torch.manual_seed(self.settings.seed)
        answers: list[str] = []
        for start in range(0, len(prompts), 64):
            answers += policy.act(
                prompts[start : start + 64], max_new_tokens=self.settings.max_new_tokens
            )
        torch.random.set_rng_state(rng)
        model.train(was_training)
        return Samples(prompts, answers, [task.judge(a) for a in answers])

    def judged_rate(self, prompts: list[str] | None = None) -> float:
        """The held-out judged rate of the policy as it is now (the benchmark's measure)."""
        return self.sample(self.model, prompts or self.heldout_prompts).preferred_rate

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """Held-out prompts before vs. after GRPO: the same seed, one sampled answer each,
        judged by the politeness rule (and scored by the run's reward model, if any)."""
        if video is not None:
            raise UsageError("--video records an agent in an environment; GRPO has none")
        prompts = self.eval_rows(episodes)
        if self._before is None or len(self._before.prompts) != len(prompts):
            reference = self.original_model()
            self._before = self.sample(reference, prompts)
            del reference
        self._after = after = self.sample(self.model, prompts)
        return self.report(self._before, after)

    def report(self, before: Any, after: Any) -> Evaluation:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        title = (
            f"{len(after.prompts)} held-out prompts, one sampled answer each (judged by the rule)"
        )
        table = Table(title=title, show_lines=True)
        table.add_column("prompt", ratio=2)
        table.add_column("before GRPO", ratio=3)
        table.add_column("after GRPO", ratio=3)
        for i in range(min(EXAMPLES, len(after.prompts))):
            question = after.prompts[i].removeprefix("User: ").split("\nAssistant:")[0]
            b = f"[{before.verdicts[i]}] {before.completions[i]}"
            a = f"[{after.verdicts[i]}] {after.completions[i]}"
            table.add_row(Text(question), Text(b), Text(a))
        buffer = io.StringIO()
        Console(file=buffer, width=120, no_color=True, highlight=False).print(table)
        lines = buffer.getvalue().rstrip("\n").splitlines()
        metrics = {
            "heldout_prompts": float(len(after.prompts)),
            "judged_rate_before": float(before.preferred_rate),
            "judged_rate_after": float(after.preferred_rate),
        }
        if not self.reward.is_rule:
            r_before = _mean(self.reward(before.prompts, before.raw))
            r_after = _mean(self.reward(after.prompts, after.raw))
            metrics["reward_before"], metrics["reward_after"] = r_before, r_after
            lines.append(f"Held-out mean reward (reward model): {r_before:.2f} -> {r_after:.2f}")
        lines.append(
            f"Held-out judged rate: {before.preferred_rate:.2f} -> {after.preferred_rate:.2f}"
        )
        return Evaluation(metrics, lines)

    def write_evaluation(self, result: Evaluation, run_dir: Path, training: Mapping) -> None:
        data: dict[str, Any] = {"metrics": result.metrics, "training": dict(training)}
        for key, samples in (("before", self._before), ("after", self._after)):
            if samples is not None:
                data[key] = [
                    {"prompt": p, "completion": c, "verdict": v}
                    for p, c, v in zip(samples.prompts, samples.completions, samples.verdicts)
                ]
        (Path(run_dir) / common.EVAL_FILE).write_text(json.dumps(data, indent=2) + "\n")

    # -- save / load -----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """The trained policy and its tokenizer (``save_pretrained`` format)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @classmethod
    def load(cls, path: Path, settings: Any = None) -> GRPOTrainerBase:
        weights = Path(path)
        if not (weights / "config.json").is_file():
            raise UsageError(
                f"{weights} holds no trained model yet; was the training interrupted before "
                "its first step?"
            )
        if settings is None:
            settings = cls.settings_class.from_dict(Run.open(weights.parent).settings)
        return cls(settings, weights=weights)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        raise NotImplementedError

    @classmethod
    def has_training_state(cls, folder: Path) -> bool:
        try:
            cls.saved_step(folder)
        except (OSError, ValueError, KeyError, RuntimeError):
            return False
        return True


class NativeGRPOTrainer(GRPOTrainerBase):
    """GRPO on the exercise functions: ``group_advantages``, ``grpo_loss`` (which calls
    ``ppo_clip_loss`` and ``kl_penalty``) and ``log_prob``: the student's own with ``--path``."""

    backend = "native"
    settings_class = NativeGRPOSettings

    def _functions(self) -> Any:
        functions = common.exercise_functions(self.settings)
        if self.settings.impl == "student":
            common.probe_grpo_functions(functions)
        return functions

    # -- one batch of answers ----------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[str]) -> dict[str, Any]:
        """Sample one answer per prompt: the token batch (prompt left-padded, answer
        right-padded), the answer mask (up to and including the end-of-sequence token) and
        the answers' text."""
        s, tok = self.settings, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(
            **enc,
            max_new_tokens=s.max_completion_length,
            do_sample=True,
            temperature=s.temperature,
            top_k=0,
            top_p=1.0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        self.model.train(was_training)
        width = enc["input_ids"].shape[1]
        completion = out[:, width:]
        is_eos = completion == tok.eos_token_id
        length = completion.shape[1]
        first_eos = torch.where(
            is_eos.any(1),
            is_eos.int().argmax(1),
            torch.full_like(is_eos[:, 0], length, dtype=torch.long),
        )
        mask = (torch.arange(length, device=self.device)[None] <= first_eos[:, None]).long()
        attention = torch.cat([enc["attention_mask"], mask], dim=1)
        return {
            "input_ids": out,
            "attention_mask": attention,
            "position_ids": (attention.cumsum(-1) - 1).clamp(min=0),
            "completion_ids": completion,
            "completion_mask": mask,
            "texts": tok.batch_decode(completion, skip_special_tokens=True),
        }

    def token_log_probs(self, model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        """log π(y_t | x, y_<t) of every answer token, with the exercise's ``log_prob`` on the
        logits that predict them. → [B, T]."""
        ids = batch["completion_ids"]
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,
            logits_to_keep=ids.shape[1] + 1,
        ).logits[:, :-1]
        return self.functions.log_prob(logits.float() / self.settings.temperature, ids)

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        """Train to ``max_steps`` optimizer steps (from ``resume_step`` on a resumed run);
        ``request_stop`` (Ctrl-C) stops after the current step."""
        self.check_resumable()
        s, fns = self.settings, self.functions
        start = time.perf_counter()
        state = _state(self.checkpoint) if self.checkpoint is not None else {}
        torch.manual_seed(s.seed)
        if "rng" in state:
            torch.random.set_rng_state(state["rng"])
        reference = self.original_model() if s.beta > 0 else None
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer = make_optimizer(s.optim, params, s.learning_rate)
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        total = s.max_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: max(0.0, 1 - (self.resume_step + k) / total)
        )
        step = self.steps_done = self.resume_step
        g, mu = s.num_generations, s.num_iterations
        generation = math.ceil(step / mu)  # a stop inside a batch's μ updates: a new batch
        orders = PromptOrder(len(self.train_prompts), s.prompts_per_step, s.seed)
        for callback in callbacks:
            callback.on_train_start(self)
        self.model.train()
        answers = tokens = 0
        generation_seconds = 0.0
        logged: dict[str, float] = {}
        keep_going = True
        while keep_going and step < total:
            chosen = [self.train_prompts[i] for i in orders.prompts(generation)]
            generation += 1
            began = time.perf_counter()
            batch = self.generate([p for p in chosen for _ in range(g)])
            generation_seconds += time.perf_counter() - began
            prompts = [p for p in chosen for _ in range(g)]
            rewards = torch.tensor(
                self.reward(prompts, batch["texts"]), dtype=torch.float32, device=self.device
            )
            advantages = fns.group_advantages(rewards, g)
            mask = batch["completion_mask"]
            with torch.no_grad():
                ref = (
                    self.token_log_probs(reference, batch)
                    if reference is not None
                    else torch.zeros(mask.shape, device=self.device)
                )
                old = self.token_log_probs(self.model, batch) if mu > 1 else None
            answers += len(prompts)
            tokens += int(mask.sum())
            group_std = rewards.view(-1, g).std(dim=1)
            for _ in range(mu):
                learning_rate = schedule.get_last_lr()[0]
                log_probs = self.token_log_probs(self.model, batch)
                old_log_probs = old if old is not None else log_probs.detach()
                loss = fns.grpo_loss(
                    log_probs, old_log_probs, ref, advantages, mask, s.epsilon, s.beta
                )
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step = self.steps_done = step + 1
                logged = _metrics(
                    fns,
                    loss,
                    log_probs,
                    old_log_probs,
                    ref,
                    advantages,
                    mask,
                    rewards,
                    group_std,
                    s,
                )
                logged.update(grad_norm=grad_norm.item(), learning_rate=learning_rate)
                if step % s.logging_steps == 0 or step == total or self.stop_requested:
                    keep_going = notify_metrics(callbacks, self, step, logged)
                keep_going = keep_going and not self.stop_requested
                if not keep_going or step >= total:
                    break
        self.model.eval()
        for callback in callbacks:
            callback.on_train_end(self)
        seconds = time.perf_counter() - start
        return {
            **logged,
            "train_seconds": seconds,
            "generation_seconds": generation_seconds,
            "train_completions": float(answers),
            "completion_tokens": float(tokens),
            "tokens_per_second": tokens / seconds,
            "steps": float(step),
        }

    def save(self, path: Path) -> None:
        """The policy (see ``GRPOTrainerBase.save``), plus what ``--resume`` needs: the step,
        the optimizer's state and the random generator's (``training_state.pt``)."""
        super().save(path)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            state = {
                "step": self.steps_done,
                "optimizer": optimizer.state_dict(),
                "rng": torch.random.get_rng_state(),
            }
            with written_whole(Path(path) / common.TRAINING_STATE) as partial:
                torch.save(state, partial)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return int(_state(folder)["step"])


@dataclass
class Samples:
    """Sampled answers (as generated, and stripped for reading) and the rule's verdicts."""

    prompts: list[str]
    raw: list[str]
    verdicts: list[str]

    @property
    def completions(self) -> list[str]:
        return [a.strip() for a in self.raw]

    @property
    def preferred_rate(self) -> float:
        return sum(v == "polite" for v in self.verdicts) / max(1, len(self.verdicts))


class PromptOrder:
    """Which prompts each batch of answers is sampled for: every epoch a permutation from a
    generator seeded with the seed, cut into batches of ``per_batch`` (a short last batch is
    dropped), so batch k is the same on a resumed run."""

    def __init__(self, n: int, per_batch: int, seed: int) -> None:
        if per_batch > n:
            raise UsageError(f"{per_batch} prompts per step, but only {n} prompts to train on")
        self.n, self.per_batch, self.seed = n, per_batch, seed
        self.per_epoch = n // per_batch
        self._epochs: list[list[int]] = []
        self._generator = torch.Generator().manual_seed(seed)

    def prompts(self, k: int) -> list[int]:
        epoch, index = divmod(k, self.per_epoch)
        while len(self._epochs) <= epoch:
            self._epochs.append(torch.randperm(self.n, generator=self._generator).tolist())
        return self._epochs[epoch][index * self.per_batch : (index + 1) * self.per_batch]


def _metrics(fns, loss, log_probs, old, ref, advantages, mask, rewards, group_std, s) -> dict:
    """TRL's GRPO metrics, as plain floats."""
    with torch.no_grad():
        m = mask.bool()
        ratio = torch.exp(log_probs.detach() - old)
        a = advantages[:, None].expand_as(ratio)
        clipped = ((ratio < 1 - s.epsilon) & (a < 0)) | ((ratio > 1 + s.epsilon) & (a > 0))
        kl = fns.kl_penalty(log_probs.detach(), ref)
        return {
            "loss": loss.item(),
            "reward": rewards.mean().item(),
            "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "kl": kl[m].mean().item() if s.beta > 0 else 0.0,
            "clip_ratio/region_mean": clipped[m].float().mean().item(),
            "completions/mean_length": mask.sum(1).float().mean().item(),
            "frac_reward_zero_std": (group_std == 0).float().mean().item(),
        }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _unused(*args: Any) -> torch.Tensor:
    raise RuntimeError("sampling only")


def make_optimizer(name: str, params: list, lr: float) -> torch.optim.Optimizer:
    """What TRL builds for ``optim="sgd"`` / ``"adamw_torch"`` (no weight decay)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def _state(folder: Path) -> dict[str, Any]:
    return torch.load(Path(folder) / common.TRAINING_STATE, weights_only=False)

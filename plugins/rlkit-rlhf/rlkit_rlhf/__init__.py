"""rlkit-rlhf: the chapter after DPO, written as an outside course author would write it.

The plugin registers, through the ``rlkit`` entry-point group:

* the exercise ``rlhf`` (``bradley_terry_loss``, ``group_advantages``, ``kl_penalty``,
  ``grpo_loss``): the stub students fill in and the public checks (their vectors stored beside
  them), here; the reference solution, the classic mistakes and the hidden checks' vectors in
  the instructors' package ``rlkit-rlhf-instructor`` (``rlkit_rlhf_instructor``);
* ``rlkit train reward-model``: a scalar head on the built-in language model fitted to the
  preference pairs (TRL's ``RewardTrainer``, or rlkit's loop on ``bradley_terry_loss``);
* ``rlkit train grpo``: GRPO against the politeness rule or a trained reward model (TRL's
  ``GRPOTrainer``, or rlkit's loop on ``group_advantages``, ``grpo_loss`` and, through it, the
  student's own ``ppo_clip_loss``, with per-token log-probs from their ``log_prob``).

The model, the preference data and the politeness rule are the DPO plugin's (``rlkit_dpo``).
Everything is named by import path, so registering imports nothing heavy.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import Exercise, TrainerSpec

from rlkit_rlhf.settings import GRPO_METRICS, REWARD_METRICS

EXERCISE = Exercise(
    "rlhf",
    ("bradley_terry_loss", "group_advantages", "kl_penalty", "grpo_loss"),
    "rlkit_rlhf.exercises.rlhf",
    "rlkit_rlhf_instructor.rlhf",
    "rlkit_rlhf.checks",
    "RLHF: a reward model and GRPO",
    order=60,
    mistakes="rlkit_rlhf_instructor.mistakes",
    hidden="rlkit_rlhf_instructor.rlhf",
    instructor="rlkit-rlhf-instructor",
    instructor_path="plugins/rlkit-rlhf-instructor",
    requires=("ppo",),  # grpo_loss calls the student's own ppo_clip_loss
)

REWARD_HELP = """Fit a reward model to the preference pairs (Bradley-Terry), then print its
held-out pairwise accuracy before and after.

\b
  rlkit train reward-model                         TRL's RewardTrainer (built-in model and pairs)
  rlkit train reward-model --backend native        rlkit's loop on bradley_terry_loss
  rlkit train reward-model --path my-work          your bradley_terry_loss (native)
  rlkit train grpo --reward runs/reward-model-...  then GRPO against it
"""

GRPO_HELP = """Align the built-in language model with GRPO: sample a group of answers per
prompt, score them (the politeness rule, or a trained reward model), and update with PPO's
clipped loss per token plus a KL leash. Prints held-out answers before and after and
`Held-out judged rate: 0.50 -> 1.00`.

\b
  rlkit train grpo                                 TRL's GRPOTrainer, rewards from the rule
  rlkit train grpo --backend native                rlkit's loop, same settings
  rlkit train grpo --path my-work                  your grpo_loss, your ppo_clip_loss (native)
  rlkit train grpo --reward runs/reward-model-...  rewards from a trained reward model
"""

TRAINERS = (
    TrainerSpec(
        "reward-model",
        "trl",
        "rlkit_rlhf.reward_model:TRLRewardTrainer",
        "TRL's RewardTrainer on the built-in preference pairs",
        ("bradley-terry",),
        settings="rlkit_rlhf.settings:RewardModelSettings",
        plot_metrics=REWARD_METRICS,
        x_metric="step",
        task_help=REWARD_HELP,
    ),
    TrainerSpec(
        "reward-model",
        "native",
        "rlkit_rlhf.reward_model:NativeRewardTrainer",
        "rlkit's reward-model loop on bradley_terry_loss (--path: yours)",
        ("bradley-terry",),
        settings="rlkit_rlhf.settings:NativeRewardModelSettings",
        exercises=("rlhf",),
        plot_metrics=REWARD_METRICS,
        x_metric="step",
        task_help=REWARD_HELP,
    ),
    TrainerSpec(
        "grpo",
        "trl",
        "rlkit_rlhf.grpo_trl:TRLGRPOTrainer",
        "TRL's GRPOTrainer on the built-in prompts",
        ("grpo",),
        settings="rlkit_rlhf.settings:GRPOSettings",
        plot_metrics=GRPO_METRICS,
        x_metric="step",
        task_help=GRPO_HELP,
    ),
    TrainerSpec(
        "grpo",
        "native",
        "rlkit_rlhf.grpo:NativeGRPOTrainer",
        "rlkit's GRPO loop on the exercise functions and your ppo_clip_loss (--path: yours)",
        ("grpo",),
        settings="rlkit_rlhf.settings:NativeGRPOSettings",
        exercises=("rlhf", "ppo", "log_prob"),
        plot_metrics=GRPO_METRICS,
        x_metric="step",
        task_help=GRPO_HELP,
    ),
)


@hookimpl
def register_exercises(register):
    register(EXERCISE)


@hookimpl
def register_trainers(register):
    for spec in TRAINERS:
        register(spec)

"""RLHF: the Bradley–Terry loss, group-relative advantages, the k3 KL penalty and GRPO's loss
(reference solution). ``grpo_loss`` calls the course's reference ``ppo_clip_loss`` (and, copied
into a workspace as an answer, the ``ppo.py`` beside it, as a student's does)."""

from __future__ import annotations

import torch

# GRPO is PPO on the completion tokens: grpo_loss calls ppo_clip_loss
if __package__:  # imported as rlkit_rlhf_instructor.rlhf: the course's reference PPO loss
    from rlkit_solutions.ppo import ppo_clip_loss
else:  # this file handed in as an answer (rlkit check, rlkit grade): the ppo.py beside it
    from ppo import ppo_clip_loss


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> torch.Tensor:
    """The reward model's loss: mean of −log σ(r_chosen − r_rejected). [B], [B] → [].

    Math: the Bradley–Terry model says a person prefers answer y_w to y_l with probability
        P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)),      σ(z) = 1 / (1 + e^(−z))
    Fitting r by maximum likelihood on preference pairs minimizes the mean negative
    log-likelihood L = −mean log σ(r_chosen − r_rejected): a logistic regression on the reward
    *difference*. (DPO's loss is the same formula with its implicit reward β·log π/π_ref.)

    Shapes: ``chosen_rewards`` and ``rejected_rewards`` [B] float (the reward model's scores of
    the preferred and the rejected answers); result a 0-dim tensor in their dtype.

    Gradients flow into both inputs: ∂L/∂r_chosen = −σ(r_rejected − r_chosen)/B and
    ∂L/∂r_rejected = +σ(r_rejected − r_chosen)/B.

    Pitfalls: ``-torch.log(torch.sigmoid(z))`` gives inf for a large negative margin z (σ
    underflows to 0); ``torch.nn.functional.logsigmoid(z)`` is stable. Chosen minus rejected,
    not the reverse; the mean, not the sum; the minus sign (we minimize).
    """
    margin = chosen_rewards - rejected_rewards
    return -torch.nn.functional.logsigmoid(margin).mean()


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """GRPO's advantages: each reward relative to its own group. [N] → [N].

    Math: ``rewards`` holds G = ``group_size`` answers per prompt, each prompt's G answers one
    after the other (N = groups·G, as TRL orders them). With mean_g and std_g the mean and the
    standard deviation of the G rewards of answer i's group,
        A_i = r_i − mean_g                       (``scale=False``)
        A_i = (r_i − mean_g) / (std_g + 1e-4)    (``scale=True``)
    std is torch's default (unbiased, divided by G − 1); 1e-4 is TRL's ε. An answer better
    than its siblings gets A > 0, a worse one A < 0; no critic is needed.

    Shapes: ``rewards`` [N] float, N a multiple of ``group_size``; result [N] in its dtype.

    The advantages are data (fixed targets for the update): return them without gradient.

    Pitfalls: normalise within each group, not over the whole batch (an easy prompt whose
    answers all score high would otherwise push every one of them up); groups are
    *consecutive* (``rewards.view(-1, group_size)``), not interleaved; a group of equal rewards
    has std 0: without the ε its advantages are 0/0 = nan, with it they are 0.
    """
    with torch.no_grad():  # data: fixed targets for the update
        groups = rewards.view(-1, group_size)
        centered = groups - groups.mean(dim=1, keepdim=True)
        if scale:
            centered = centered / (groups.std(dim=1, keepdim=True) + 1e-4)
        return centered.reshape(rewards.shape)


def kl_penalty(log_probs: torch.Tensor, ref_log_probs: torch.Tensor) -> torch.Tensor:
    """The per-token KL estimate k3 = exp(ref − lp) − (ref − lp) − 1 ≥ 0. [...], [...] → [...].

    Math: with lp = log π(y_t|x, y_<t) and ref = log π_ref(y_t|x, y_<t) of a sampled token,
        k3 = exp(ref − lp) − (ref − lp) − 1
    estimates KL(π ‖ π_ref) without bias (E over y_t ~ π of exp(ref − lp) is 1), and since
    e^d ≥ 1 + d it is never negative, unlike the naive lp − ref. It is 0 exactly where the
    policy agrees with the reference; added to the loss with a weight β it leashes the policy.

    Shapes: ``log_probs`` and ``ref_log_probs`` of any same shape (e.g. [B, T] per token);
    result of that shape, in their dtype.

    Gradients flow into ``log_probs`` only (∂k3/∂lp = 1 − exp(ref − lp)): the reference model
    is frozen, so detach ``ref_log_probs``.

    Pitfalls: the difference is ref − lp, not lp − ref (that estimates the other direction,
    KL(π_ref ‖ π)); do not forget the −1 (the estimate must be 0 where π = π_ref); no square,
    no absolute value; keep the sign (a penalty, ≥ 0).
    """
    diff = ref_log_probs.detach() - log_probs  # the reference is frozen
    return torch.exp(diff) - diff - 1.0


def grpo_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
) -> torch.Tensor:
    """GRPO's loss: your ``ppo_clip_loss`` over every completion token, plus β·KL. → [].

    Math: every token t of answer i is one PPO "action" whose advantage is the answer's A_i.
    Over the completion tokens of the whole batch (mask = 1),
        L = ppo_clip_loss(lp_tokens, old_tokens, A_tokens, clip_eps)
            + β · mean over the same tokens of kl_penalty(lp, ref)
    where lp_tokens = ``log_probs[mask]``, old_tokens = ``old_log_probs[mask]`` and A_tokens is
    A_i repeated for each token of answer i. The ratio is per token, exp(lp_t − old_t). This
    is TRL's GRPOTrainer loss with its default ``loss_type="dapo"``: one mean over all tokens.

    Shapes: ``log_probs``, ``old_log_probs``, ``ref_log_probs`` [B, T] float (per-token
    log-probabilities of B sampled answers, padded to T tokens) under the policy being trained,
    the policy that sampled them and the reference; ``advantages`` [B] (``group_advantages``);
    ``completion_mask`` [B, T] int64, 1 on answer tokens and 0 on padding. Result a 0-dim
    tensor in the log-probs' dtype.

    Gradients flow into ``log_probs`` only: the old and the reference log-probs and the
    advantages are data.

    Pitfalls: call ``ppo_clip_loss`` (yours, imported at the top of this file) on the masked
    tokens, never on padding; a ratio per token, not per answer (exp of summed log-probs);
    the KL term is *added* (a penalty) and uses ``kl_penalty`` (ref − lp); the reference
    log-probs are detached; one mean over all tokens of the batch.
    """
    mask = completion_mask.bool()
    per_token_advantages = advantages.detach()[:, None].expand_as(log_probs)
    policy_loss = ppo_clip_loss(
        log_probs[mask], old_log_probs[mask], per_token_advantages[mask], clip_eps
    )
    kl = kl_penalty(log_probs[mask], ref_log_probs[mask])
    return policy_loss + beta * kl.mean()

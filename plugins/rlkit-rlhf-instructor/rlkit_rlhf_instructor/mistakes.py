"""Classic mistakes and alternative correct answers of the RLHF exercise.

Each mistake must fail a public check and be named in its feedback; each alternative must pass
every check, hidden ones included (the core's ``tests/test_exercise_mistakes.py`` and the
plugin's own tests). The vectors store how each mistake behaves, so the feedback can say "Looks
like a classic mistake: ..." when a student's code behaves exactly like one. ``grpo_loss``'s
mistakes and alternatives call the reference ``ppo_clip_loss``, as a right ppo.py would.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from rlkit_grader.spec import Alternative, Mistake

ppo_clip_loss = importlib.import_module("rlkit_solutions.ppo").ppo_clip_loss

# ------------------------------------------------------------------------- bradley_terry_loss


def _bt(variant):
    def bradley_terry_loss(chosen_rewards, rejected_rewards):
        c, r = chosen_rewards, rejected_rewards
        if variant == "naive_log_sigmoid":
            return -torch.log(torch.sigmoid(c - r)).mean()
        if variant == "swapped":
            return -F.logsigmoid(r - c).mean()
        if variant == "sum":
            return -F.logsigmoid(c - r).sum()
        if variant == "no_minus":
            return F.logsigmoid(c - r).mean()
        if variant == "sigmoid_not_log":
            return -torch.sigmoid(c - r).mean()
        if variant == "rejected_detached":
            return -F.logsigmoid(c - r.detach()).mean()
        raise ValueError(variant)

    return bradley_terry_loss


# ------------------------------------------------------------------------- group_advantages


def _groups(variant):
    def group_advantages(rewards, group_size, scale=True):
        r = rewards if variant == "not_detached" else rewards.detach()
        if variant == "batch_normalized":
            centered = r - r.mean()
            return centered / (r.std() + 1e-4) if scale else centered
        if variant == "interleaved":  # groups taken as every G-th answer
            g = r.view(group_size, -1)
            centered = g - g.mean(dim=0, keepdim=True)
            if scale:
                centered = centered / (g.std(dim=0, keepdim=True) + 1e-4)
            return centered.reshape(-1)
        g = r.view(-1, group_size)
        centered = g - g.mean(dim=1, keepdim=True)
        if variant == "ignores_scale" or scale:
            std = g.std(dim=1, keepdim=True, unbiased=variant != "biased_std")
            centered = centered / (std if variant == "no_eps" else std + 1e-4)
        return centered.reshape(-1)

    return group_advantages


# ------------------------------------------------------------------------- kl_penalty


def _kl(variant):
    def kl_penalty(log_probs, ref_log_probs):
        ref = ref_log_probs if variant == "ref_not_detached" else ref_log_probs.detach()
        lp = log_probs.detach() if variant == "policy_detached" else log_probs
        d = ref - lp
        if variant == "reversed":  # k3 of KL(π_ref ‖ π)
            return torch.exp(-d) + d - 1.0
        if variant == "negated":
            return -(torch.exp(d) - d - 1.0)
        if variant == "k1":
            return lp - ref
        if variant == "k2":
            return 0.5 * d**2
        if variant == "no_minus_one":
            return torch.exp(d) - d
        return torch.exp(d) - d - 1.0

    return kl_penalty


def _k3(log_probs, ref_log_probs):
    d = ref_log_probs.detach() - log_probs
    return torch.exp(d) - d - 1.0


# ------------------------------------------------------------------------- grpo_loss


def _grpo(variant):
    def grpo_loss(
        log_probs,
        old_log_probs,
        ref_log_probs,
        advantages,
        completion_mask,
        clip_eps=0.2,
        beta=0.04,
    ):
        mask = completion_mask.bool()
        adv = advantages.detach()[:, None].expand_as(log_probs)
        if variant == "mask_ignored":
            lp, old, ref, a = (
                x.reshape(-1) for x in (log_probs, old_log_probs, ref_log_probs, adv)
            )
            return ppo_clip_loss(lp, old, a, clip_eps) + beta * _k3(lp, ref).mean()
        if variant == "sequence_ratio":  # one ratio per answer: exp of summed log-probs
            m = completion_mask.to(log_probs.dtype)
            seq = (log_probs * m).sum(-1)
            seq_old = (old_log_probs * m).sum(-1)
            kl = _k3(log_probs[mask], ref_log_probs[mask]).mean()
            return ppo_clip_loss(seq, seq_old, advantages.detach(), clip_eps) + beta * kl
        if variant == "per_answer_mean":  # each answer's tokens averaged first (loss_type="grpo")
            m = completion_mask.to(log_probs.dtype)
            ratio = torch.exp(log_probs - old_log_probs.detach())
            surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
            per_token = -surrogate + beta * _k3(log_probs, ref_log_probs)
            return ((per_token * m).sum(-1) / m.sum(-1)).mean()
        lp, old, ref, a = log_probs[mask], old_log_probs[mask], ref_log_probs[mask], adv[mask]
        policy = ppo_clip_loss(lp, old, a, clip_eps)
        if variant == "ref_not_detached":
            d = ref - lp
            return policy + beta * (torch.exp(d) - d - 1.0).mean()
        if variant == "kl_subtracted":
            return policy - beta * _k3(lp, ref).mean()
        if variant == "kl_unweighted":
            return policy + _k3(lp, ref).mean()
        if variant == "kl_reversed":
            d = lp - ref.detach()
            return policy + beta * (torch.exp(d) - d - 1.0).mean()
        raise ValueError(variant)

    return grpo_loss


MISTAKES = [
    Mistake(
        "bt_naive_log_sigmoid",
        "bradley_terry_loss",
        "computes log(sigmoid(margin)): for a large negative margin sigmoid underflows to 0 "
        "and the loss is inf; use torch.nn.functional.logsigmoid(margin).",
        _bt("naive_log_sigmoid"),
    ),
    Mistake(
        "bt_swapped",
        "bradley_terry_loss",
        "uses r_rejected − r_chosen; the preferred answer must score higher: "
        "−logsigmoid(r_chosen − r_rejected).",
        _bt("swapped"),
    ),
    Mistake(
        "bt_sum",
        "bradley_terry_loss",
        "sums over the pairs instead of averaging.",
        _bt("sum"),
    ),
    Mistake(
        "bt_no_minus",
        "bradley_terry_loss",
        "forgets the minus sign: the loss is the *negative* log-likelihood (we minimize).",
        _bt("no_minus"),
    ),
    Mistake(
        "bt_sigmoid_not_log",
        "bradley_terry_loss",
        "averages −σ(margin) instead of −log σ(margin): the Bradley–Terry likelihood needs the log.",
        _bt("sigmoid_not_log"),
    ),
    Mistake(
        "bt_rejected_detached",
        "bradley_terry_loss",
        "detaches the rejected rewards: both scores come from the reward model being trained, "
        "so the gradient must reach both.",
        _bt("rejected_detached"),
    ),
    Mistake(
        "adv_batch_normalized",
        "group_advantages",
        "normalises over the whole batch instead of each group: each answer is compared with "
        "the other answers to *its own* prompt (rewards.view(-1, group_size)).",
        _groups("batch_normalized"),
    ),
    Mistake(
        "adv_interleaved_groups",
        "group_advantages",
        "reads the groups interleaved (rewards.view(group_size, -1)); each prompt's answers are "
        "consecutive: rewards.view(-1, group_size), statistics along dim 1.",
        _groups("interleaved"),
    ),
    Mistake(
        "adv_no_eps",
        "group_advantages",
        "divides by the group's std without the 1e-4: a group of equal rewards gives 0/0 = nan.",
        _groups("no_eps"),
    ),
    Mistake(
        "adv_biased_std",
        "group_advantages",
        "uses the biased std (divided by G); torch's default, std(unbiased=True), divides by G − 1.",
        _groups("biased_std"),
    ),
    Mistake(
        "adv_ignores_scale",
        "group_advantages",
        "divides by the std even when scale=False; then the advantage is r − mean only.",
        _groups("ignores_scale"),
    ),
    Mistake(
        "adv_not_detached",
        "group_advantages",
        "returns advantages that carry a gradient; they are data: compute them under "
        "torch.no_grad() or .detach() them.",
        _groups("not_detached"),
    ),
    Mistake(
        "kl_reversed",
        "kl_penalty",
        "uses lp − ref instead of ref − lp: that estimates KL(π_ref ‖ π), the other direction.",
        _kl("reversed"),
    ),
    Mistake(
        "kl_negated",
        "kl_penalty",
        "flips the sign: the KL penalty is never negative, exp(d) − d − 1 ≥ 0 with d = ref − lp.",
        _kl("negated"),
    ),
    Mistake(
        "kl_k1",
        "kl_penalty",
        "returns lp − ref (the naive estimator k1, negative for some tokens); GRPO uses "
        "k3 = exp(ref − lp) − (ref − lp) − 1.",
        _kl("k1"),
    ),
    Mistake(
        "kl_k2",
        "kl_penalty",
        "returns ½·(ref − lp)² (the estimator k2); GRPO uses k3 = exp(ref − lp) − (ref − lp) − 1.",
        _kl("k2"),
    ),
    Mistake(
        "kl_no_minus_one",
        "kl_penalty",
        "forgets the − 1: where π = π_ref the penalty must be 0.",
        _kl("no_minus_one"),
    ),
    Mistake(
        "kl_ref_not_detached",
        "kl_penalty",
        "lets the gradient flow into the reference's log-probs; the reference is frozen: detach it.",
        _kl("ref_not_detached"),
    ),
    Mistake(
        "kl_policy_detached",
        "kl_penalty",
        "detaches log_probs: then the penalty cannot pull the policy back towards the reference.",
        _kl("policy_detached"),
    ),
    Mistake(
        "grpo_mask_ignored",
        "grpo_loss",
        "ignores completion_mask: padding tokens are not part of any answer; pass only "
        "log_probs[mask] (and the same tokens of the other inputs) to ppo_clip_loss and the KL.",
        _grpo("mask_ignored"),
    ),
    Mistake(
        "grpo_sequence_ratio",
        "grpo_loss",
        "computes one ratio per answer (exp of its summed log-probs); GRPO clips a ratio per "
        "token, exp(lp_t − old_t), each token carrying its answer's advantage.",
        _grpo("sequence_ratio"),
    ),
    Mistake(
        "grpo_per_answer_mean",
        "grpo_loss",
        "averages each answer's tokens first, then the answers (TRL's loss_type='grpo'); the "
        "contract takes one mean over every answer token of the batch (ppo_clip_loss on the "
        "masked tokens, TRL's default 'dapo').",
        _grpo("per_answer_mean"),
    ),
    Mistake(
        "grpo_ref_not_detached",
        "grpo_loss",
        "lets the gradient flow into ref_log_probs; the reference model is frozen: use "
        "kl_penalty, which detaches it.",
        _grpo("ref_not_detached"),
    ),
    Mistake(
        "grpo_kl_subtracted",
        "grpo_loss",
        "subtracts β·KL; it is a penalty: L = ppo_clip_loss(...) + β·mean(kl_penalty(...)).",
        _grpo("kl_subtracted"),
    ),
    Mistake(
        "grpo_kl_unweighted",
        "grpo_loss",
        "adds the KL without β: L = ppo_clip_loss(...) + beta * mean(kl_penalty(...)).",
        _grpo("kl_unweighted"),
    ),
    Mistake(
        "grpo_kl_reversed",
        "grpo_loss",
        "estimates the KL with lp − ref; kl_penalty uses ref − lp (KL(π ‖ π_ref)).",
        _grpo("kl_reversed"),
    ),
]


# ------------------------------------------------------------------------- alternatives


def _bt_softplus(chosen_rewards, rejected_rewards):
    return F.softplus(rejected_rewards - chosen_rewards).mean()


def _bt_bce(chosen_rewards, rejected_rewards):
    margin = chosen_rewards - rejected_rewards
    return F.binary_cross_entropy_with_logits(margin, torch.ones_like(margin))


def _groups_std_mean(rewards, group_size, scale=True):
    with torch.no_grad():
        g = rewards.unflatten(0, (-1, group_size))
        std, mean = torch.std_mean(g, dim=-1, keepdim=True)
        out = g - mean
        return (out / (std + 1e-4) if scale else out).flatten()


def _groups_loop(rewards, group_size, scale=True):
    parts = []
    for start in range(0, len(rewards), group_size):
        g = rewards[start : start + group_size].detach()
        a = g - g.mean()
        parts.append(a / (g.std() + 1e-4) if scale else a)
    return torch.cat(parts)


def _kl_expm1(log_probs, ref_log_probs):
    d = ref_log_probs.detach() - log_probs
    return torch.expm1(d) - d


def _kl_ratio(log_probs, ref_log_probs):
    log_ratio = ref_log_probs.detach() - log_probs
    return log_ratio.exp() - 1 - log_ratio


def _grpo_masked_select(
    log_probs, old_log_probs, ref_log_probs, advantages, completion_mask, clip_eps=0.2, beta=0.04
):
    m = completion_mask == 1
    adv = advantages.detach().unsqueeze(1).repeat(1, log_probs.shape[1])
    pick = torch.masked_select
    loss = ppo_clip_loss(pick(log_probs, m), pick(old_log_probs, m), pick(adv, m), clip_eps)
    d = pick(ref_log_probs, m).detach() - pick(log_probs, m)
    return loss + beta * (torch.exp(d) - d - 1).mean()


def _grpo_nonzero(
    log_probs, old_log_probs, ref_log_probs, advantages, completion_mask, clip_eps=0.2, beta=0.04
):
    rows, cols = completion_mask.nonzero(as_tuple=True)
    lp = log_probs[rows, cols]
    loss = ppo_clip_loss(lp, old_log_probs[rows, cols], advantages[rows].detach(), clip_eps)
    return loss + beta * _k3(lp, ref_log_probs[rows, cols]).sum() / len(rows)


ALTERNATIVES = [
    Alternative("bt_softplus", "bradley_terry_loss", _bt_softplus),
    Alternative("bt_bce_with_logits", "bradley_terry_loss", _bt_bce),
    Alternative("adv_std_mean", "group_advantages", _groups_std_mean),
    Alternative("adv_loop", "group_advantages", _groups_loop),
    Alternative("kl_expm1", "kl_penalty", _kl_expm1),
    Alternative("kl_log_ratio", "kl_penalty", _kl_ratio),
    Alternative("grpo_masked_select", "grpo_loss", _grpo_masked_select),
    Alternative("grpo_nonzero", "grpo_loss", _grpo_nonzero),
]

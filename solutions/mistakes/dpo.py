"""Classic mistakes and alternative correct answers for exercise 4 (DPO)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlkit_grader.spec import Alternative, Mistake


def _token_logps(log_pi, ids):
    return log_pi.gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)


def _seq(logits, input_ids, completion_mask, *, variant=""):
    if variant == "no_shift":
        return (
            _token_logps(torch.log_softmax(logits, -1), input_ids)
            * completion_mask.to(logits.dtype)
        ).sum(-1)
    if variant == "overflow":
        log_pi = torch.log(torch.softmax(logits[:, :-1], -1))
    elif variant == "wrong_dim":
        log_pi = torch.log_softmax(logits[:, :-1], 1)
    else:
        log_pi = torch.log_softmax(logits[:, :-1], -1)
    tokens = _token_logps(log_pi, input_ids[:, 1:])
    mask = (completion_mask[:, :-1] if variant == "mask_misaligned" else completion_mask[:, 1:]).to(
        logits.dtype
    )
    if variant == "prompt_counted":
        return tokens.sum(-1)
    if variant == "mean":
        return (tokens * mask).sum(-1) / mask.sum(-1)
    return (tokens * mask).sum(-1)


def _seq_mistake(variant):
    def sequence_log_probs(logits, input_ids, completion_mask):
        return _seq(logits, input_ids, completion_mask, variant=variant)

    return sequence_log_probs


def _dpo(pc, pr, rc, rr, beta=0.1, *, variant=""):
    if variant != "ref_not_detached":
        rc, rr = rc.detach(), rr.detach()
    chosen, rejected = pc - rc, pr - rr
    margin = beta * (chosen - rejected)
    if variant == "beta_on_policy_only":
        margin = beta * (pc - pr) - (rc - rr)
    if variant == "wrong_sign":
        margin = -margin
    if variant == "from_detached_rewards":
        margin = (beta * chosen).detach() - (beta * rejected).detach()
    if variant == "log_sigmoid_overflow":
        losses = -torch.log(torch.sigmoid(margin))
    elif variant == "beta_outside":
        losses = -beta * F.logsigmoid(chosen - rejected)
    else:
        losses = -F.logsigmoid(margin)
    loss = losses.sum() if variant == "sum" else losses.mean()
    scale = 1.0 if variant == "rewards_without_beta" else beta
    cr, rj = scale * chosen, scale * rejected
    if variant != "rewards_not_detached":
        cr, rj = cr.detach(), rj.detach()
    return loss, cr, rj


def _dpo_mistake(variant):
    def dpo_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1
    ):
        return _dpo(
            policy_chosen_logps,
            policy_rejected_logps,
            ref_chosen_logps,
            ref_rejected_logps,
            beta,
            variant=variant,
        )

    return dpo_loss


MISTAKES = [
    Mistake(
        "no_shift",
        "sequence_log_probs",
        "forgets the shift: the logits at position t-1 predict the token at position t.",
        _seq_mistake("no_shift"),
    ),
    Mistake(
        "prompt_tokens_counted",
        "sequence_log_probs",
        "counts prompt and padding tokens: multiply by the completion mask.",
        _seq_mistake("prompt_counted"),
    ),
    Mistake(
        "token_mean",
        "sequence_log_probs",
        "averages over the completion tokens; log π(y|x) is their sum.",
        _seq_mistake("mean"),
    ),
    Mistake(
        "seq_log_softmax_overflow",
        "sequence_log_probs",
        "log(softmax(...)) underflows to -inf for large logits; use torch.log_softmax.",
        _seq_mistake("overflow"),
    ),
    Mistake(
        "mask_misaligned",
        "sequence_log_probs",
        "shifts the logits but not the mask: token t is counted when mask[:, t] is 1, so "
        "pair logits[:, :-1] with input_ids[:, 1:] and completion_mask[:, 1:].",
        _seq_mistake("mask_misaligned"),
    ),
    Mistake(
        "softmax_over_sequence",
        "sequence_log_probs",
        "normalizes over the sequence positions; the softmax runs over the vocabulary (dim=-1).",
        _seq_mistake("wrong_dim"),
    ),
    Mistake(
        "beta_on_policy_only",
        "dpo_loss",
        "applies β to the policy log-probs only; β multiplies the whole difference of "
        "log-ratios β·[(π_w - ref_w) - (π_l - ref_l)].",
        _dpo_mistake("beta_on_policy_only"),
    ),
    Mistake(
        "beta_outside_logsigmoid",
        "dpo_loss",
        "multiplies the log-sigmoid by β; β goes inside: -log σ(β·(log-ratio difference)).",
        _dpo_mistake("beta_outside"),
    ),
    Mistake(
        "dpo_wrong_sign",
        "dpo_loss",
        "the sign inside the sigmoid is flipped: the loss is -log σ(Δ) = softplus(-Δ) with "
        "Δ = β·[(log π_w - log π_ref,w) - (log π_l - log π_ref,l)]; yours is -log σ(-Δ) = "
        "softplus(Δ), which is smallest when the rejected answer wins. Check the sign of Δ "
        "where it enters logsigmoid/softplus.",
        _dpo_mistake("wrong_sign"),
    ),
    Mistake(
        "dpo_log_sigmoid_overflow",
        "dpo_loss",
        "log(sigmoid(x)) gives -inf for very negative margins; use F.logsigmoid.",
        _dpo_mistake("log_sigmoid_overflow"),
    ),
    Mistake(
        "reference_not_detached",
        "dpo_loss",
        "lets the gradient flow into the reference log-probs: the reference model is "
        "frozen, detach them.",
        _dpo_mistake("ref_not_detached"),
    ),
    Mistake(
        "rewards_not_detached",
        "dpo_loss",
        "returns rewards that still carry a gradient; they are for logging: .detach() them.",
        _dpo_mistake("rewards_not_detached"),
    ),
    Mistake(
        "dpo_sum",
        "dpo_loss",
        "sums the per-pair losses instead of averaging them.",
        _dpo_mistake("sum"),
    ),
    Mistake(
        "rewards_without_beta",
        "dpo_loss",
        "returns rewards without β; the implicit reward is β·(log π - log π_ref).",
        _dpo_mistake("rewards_without_beta"),
    ),
    Mistake(
        "loss_from_detached_rewards",
        "dpo_loss",
        "computes the loss from the detached rewards, so no gradient reaches the policy.",
        _dpo_mistake("from_detached_rewards"),
    ),
]


def _seq_loop(logits, input_ids, completion_mask):
    total = torch.zeros(logits.shape[0], dtype=logits.dtype)
    for t in range(1, logits.shape[1]):
        log_pi = torch.log_softmax(logits[:, t - 1], dim=-1)
        token = log_pi[torch.arange(logits.shape[0]), input_ids[:, t]]
        total = total + token * completion_mask[:, t]
    return total


def _seq_cross_entropy(logits, input_ids, completion_mask):
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none")
    return -(nll * completion_mask[:, 1:]).sum(dim=1)


def _seq_masked_fill(logits, input_ids, completion_mask):
    per_token = torch.gather(logits.log_softmax(-1), 2, input_ids.roll(-1, dims=1)[..., None])
    per_token = per_token[..., 0][:, :-1]
    return per_token.masked_fill(~completion_mask[:, 1:].bool(), 0.0).sum(-1)


def _dpo_softplus(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1
):
    chosen = beta * (policy_chosen_logps - ref_chosen_logps.detach())
    rejected = beta * (policy_rejected_logps - ref_rejected_logps.detach())
    loss = F.softplus(-(chosen - rejected)).mean()
    return loss, chosen.detach(), rejected.detach()


def _dpo_logratios(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1
):
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = (ref_chosen_logps - ref_rejected_logps).detach()
    loss = -F.logsigmoid(beta * (pi_logratios - ref_logratios)).mean()
    with torch.no_grad():
        chosen = beta * (policy_chosen_logps - ref_chosen_logps)
        rejected = beta * (policy_rejected_logps - ref_rejected_logps)
    return loss, chosen, rejected


ALTERNATIVES = [
    Alternative("token_loop", "sequence_log_probs", _seq_loop),
    Alternative("cross_entropy", "sequence_log_probs", _seq_cross_entropy),
    Alternative("roll_masked_fill", "sequence_log_probs", _seq_masked_fill),
    Alternative("softplus", "dpo_loss", _dpo_softplus),
    Alternative("trl_logratios", "dpo_loss", _dpo_logratios),
]

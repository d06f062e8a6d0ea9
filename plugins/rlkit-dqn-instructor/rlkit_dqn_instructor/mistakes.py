"""Classic mistakes and alternative correct answers of the DQN exercise.

Each mistake must fail a public check and be named in its feedback; each alternative must pass
every check, hidden ones included (``tests/test_dqn_exercise.py``). The vectors store how each
mistake behaves, so the feedback can say "Looks like a classic mistake: ..." when a student's
code behaves exactly like one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rlkit_grader.spec import Alternative, Mistake

# ------------------------------------------------------------------------- td_target


def _td(rewards, next_q_values, dones, gamma, *, variant=""):
    q = next_q_values if variant == "not_detached" else next_q_values.detach()
    r = rewards.detach()
    if variant == "max_over_batch":
        best = q.max(dim=0).values
    elif variant == "mean_over_actions":
        best = q.mean(dim=-1)
    else:
        best = q.max(dim=-1).values
    not_done = 1.0 - dones.to(r.dtype)
    if variant == "ignores_dones":
        return r + gamma * best
    if variant == "done_inverted":
        return r + gamma * dones.to(r.dtype) * best
    if variant == "done_masks_reward":
        return not_done * (r + gamma * best)
    if variant == "discounts_reward":
        return gamma * (r + not_done * best)
    return r + gamma * not_done * best


def _td_mistake(variant):
    def td_target(rewards, next_q_values, dones, gamma):
        return _td(rewards, next_q_values, dones, gamma, variant=variant)

    return td_target


# ------------------------------------------------------------------------- double_dqn_target


def _double(rewards, next_q_online, next_q_target, dones, gamma, *, variant=""):
    online, target = next_q_online.detach(), next_q_target.detach()
    if variant == "not_detached":
        online, target = next_q_online, next_q_target
    if variant == "target_argmax":  # plain DQN: the target network chooses and values
        value = target.max(dim=-1).values
    elif variant == "swapped":
        value = online.gather(-1, target.argmax(dim=-1, keepdim=True)).squeeze(-1)
    elif variant == "online_values":
        value = online.max(dim=-1).values
    else:
        value = target.gather(-1, online.argmax(dim=-1, keepdim=True)).squeeze(-1)
    if variant == "ignores_dones":
        return rewards.detach() + gamma * value
    return rewards.detach() + gamma * (1.0 - dones.to(rewards.dtype)) * value


def _double_mistake(variant):
    def double_dqn_target(rewards, next_q_online, next_q_target, dones, gamma):
        return _double(rewards, next_q_online, next_q_target, dones, gamma, variant=variant)

    return double_dqn_target


# ------------------------------------------------------------------------- dqn_loss


def _loss(q_values, actions, targets, *, variant=""):
    y = targets if variant == "targets_not_detached" else targets.detach()
    if variant == "max_instead_of_taken":
        q = q_values.max(dim=-1).values
    elif variant == "gather_wrong_dim":
        q = q_values.gather(0, actions.unsqueeze(0)).squeeze(0)
    else:
        q = q_values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    x = q - y
    if variant == "mse":
        return (x**2).mean()
    if variant == "half_mse":
        return 0.5 * (x**2).mean()
    if variant == "l1":
        return x.abs().mean()
    huber = torch.where(x.abs() <= 1.0, 0.5 * x**2, x.abs() - 0.5)
    return huber.sum() if variant == "sum" else huber.mean()


def _loss_mistake(variant):
    def dqn_loss(q_values, actions, targets):
        return _loss(q_values, actions, targets, variant=variant)

    return dqn_loss


MISTAKES = [
    Mistake(
        "td_max_over_batch",
        "td_target",
        "takes the max over the batch (dim 0); the max is over the actions: "
        "next_q_values.max(dim=-1).values.",
        _td_mistake("max_over_batch"),
    ),
    Mistake(
        "td_mean_over_actions",
        "td_target",
        "averages the next Q-values over the actions; the Bellman optimality target takes "
        "their max (the greedy action).",
        _td_mistake("mean_over_actions"),
    ),
    Mistake(
        "td_ignores_dones",
        "td_target",
        "forgets (1 - done): a terminal transition has no next state to bootstrap from, "
        "so its target is the reward alone.",
        _td_mistake("ignores_dones"),
    ),
    Mistake(
        "td_done_inverted",
        "td_target",
        "multiplies the bootstrap by done instead of (1 - done).",
        _td_mistake("done_inverted"),
    ),
    Mistake(
        "td_done_masks_reward",
        "td_target",
        "multiplies the reward by (1 - done) too; the reward of the last step still counts: "
        "y = r + γ·(1 - done)·max Q.",
        _td_mistake("done_masks_reward"),
    ),
    Mistake(
        "td_discounts_reward",
        "td_target",
        "discounts the reward as well; γ multiplies the next state's value only.",
        _td_mistake("discounts_reward"),
    ),
    Mistake(
        "td_not_detached",
        "td_target",
        "lets the target carry a gradient; it is a label: compute it under torch.no_grad() "
        "or .detach() it.",
        _td_mistake("not_detached"),
    ),
    Mistake(
        "double_target_argmax",
        "double_dqn_target",
        "lets the target network choose a' (its own max): that is plain DQN. The online "
        "network chooses a' = argmax Q_online(s', ·), the target network values it.",
        _double_mistake("target_argmax"),
    ),
    Mistake(
        "double_swapped",
        "double_dqn_target",
        "swaps the networks: the online network chooses (argmax) and the target network "
        "values (gather), not the other way round.",
        _double_mistake("swapped"),
    ),
    Mistake(
        "double_online_values",
        "double_dqn_target",
        "values a' with the online network; the value comes from the target network: "
        "next_q_target.gather(-1, a').",
        _double_mistake("online_values"),
    ),
    Mistake(
        "double_ignores_dones",
        "double_dqn_target",
        "forgets (1 - done): nothing is bootstrapped from after the episode's end.",
        _double_mistake("ignores_dones"),
    ),
    Mistake(
        "double_not_detached",
        "double_dqn_target",
        "lets the target carry a gradient; it is a label: compute it under torch.no_grad().",
        _double_mistake("not_detached"),
    ),
    Mistake(
        "loss_mse",
        "dqn_loss",
        "uses the squared error (MSE) instead of the Huber loss: ½·x² for |x| ≤ 1, |x| - ½ beyond.",
        _loss_mistake("mse"),
    ),
    Mistake(
        "loss_half_mse",
        "dqn_loss",
        "uses ½·x² for every error; beyond |x| = 1 the Huber loss grows linearly: |x| - ½.",
        _loss_mistake("half_mse"),
    ),
    Mistake(
        "loss_l1",
        "dqn_loss",
        "uses the absolute error |x|; near 0 the Huber loss is quadratic: ½·x².",
        _loss_mistake("l1"),
    ),
    Mistake(
        "loss_sum",
        "dqn_loss",
        "sums over the batch instead of averaging.",
        _loss_mistake("sum"),
    ),
    Mistake(
        "loss_targets_not_detached",
        "dqn_loss",
        "lets the gradient flow into the targets: detach them, they are labels.",
        _loss_mistake("targets_not_detached"),
    ),
    Mistake(
        "loss_max_instead_of_taken",
        "dqn_loss",
        "regresses max_a Q(s, a) instead of Q of the action taken: "
        "q_values.gather(-1, actions.unsqueeze(-1)).",
        _loss_mistake("max_instead_of_taken"),
    ),
    Mistake(
        "loss_gather_wrong_dim",
        "dqn_loss",
        "picks Q(s, a) along the batch dimension; gather along the actions: "
        "q_values.gather(-1, actions.unsqueeze(-1)).",
        _loss_mistake("gather_wrong_dim"),
    ),
]


# ------------------------------------------------------------------------- alternatives


def _td_where(rewards, next_q_values, dones, gamma):
    best = torch.amax(next_q_values, dim=1).detach()
    return torch.where(dones, rewards, rewards + gamma * best).detach()


def _td_float_mask(rewards, next_q_values, dones, gamma):
    with torch.no_grad():
        mask = (~dones).to(next_q_values.dtype)
        return rewards + gamma * mask * next_q_values.max(-1)[0]


def _double_indexing(rewards, next_q_online, next_q_target, dones, gamma):
    rows = torch.arange(len(rewards))
    value = next_q_target.detach()[rows, next_q_online.detach().argmax(dim=1)]
    return torch.where(dones, rewards, rewards + gamma * value).detach()


def _double_take_along(rewards, next_q_online, next_q_target, dones, gamma):
    with torch.no_grad():
        chosen = torch.argmax(next_q_online, dim=-1, keepdim=True)
        value = torch.take_along_dim(next_q_target, chosen, dim=-1)[:, 0]
        return rewards + gamma * (1 - dones.float()).to(rewards.dtype) * value


def _loss_huber(q_values, actions, targets):
    q = q_values[torch.arange(len(actions)), actions]
    return F.huber_loss(q, targets.detach(), delta=1.0)


def _loss_by_hand(q_values, actions, targets):
    x = q_values.gather(1, actions[:, None])[:, 0] - targets.detach()
    quadratic = torch.clamp(x.abs(), max=1.0)
    linear = x.abs() - quadratic
    return (0.5 * quadratic**2 + linear).mean()


ALTERNATIVES = [
    Alternative("td_where", "td_target", _td_where),
    Alternative("td_float_mask", "td_target", _td_float_mask),
    Alternative("double_indexing", "double_dqn_target", _double_indexing),
    Alternative("double_take_along", "double_dqn_target", _double_take_along),
    Alternative("loss_huber_loss", "dqn_loss", _loss_huber),
    Alternative("loss_by_hand", "dqn_loss", _loss_by_hand),
]

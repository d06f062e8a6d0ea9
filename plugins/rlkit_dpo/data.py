"""Preference data: JSONL files of ``{"prompt", "chosen", "rejected"}`` rows, checked line by
line, and turned into the tensors DPO needs exactly the way TRL's ``DPOTrainer`` does it, so
that both backends see identical tokens (and agree on the loss to 1e-5).

Tokenization (TRL 1.x, plain-text rows): the EOS text is appended to each answer; ``prompt``,
``prompt + chosen`` and ``prompt + rejected`` are tokenized separately, and the completion
starts where the prompt's ids stop being a prefix. A batch stacks the chosen sequences on top
of the rejected ones, ``[2B, L]``, right-padded, with ``completion_mask`` 1 on answer tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkit.errors import UsageError

COLUMNS = ("prompt", "chosen", "rejected")
ASSETS_DATA = Path(__file__).resolve().parent / "assets" / "data"
DEFAULT_TRAIN = ASSETS_DATA / "train.jsonl"
DEFAULT_HELDOUT = ASSETS_DATA / "heldout.jsonl"


def load_jsonl(path: Path | str, flag: str = "--data") -> list[dict[str, str]]:
    """Rows of a preference JSONL file; any bad line stops with one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"{flag} {path}: no such file; pass a JSONL file of prompt/chosen/rejected rows"
        )
    rows, file_kind = [], None
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(
                    f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line must be "
                    'one object like {"prompt": ..., "chosen": ..., "rejected": ...}'
                ) from None
            if not isinstance(row, dict):
                raise UsageError(
                    f"{where}: expected a JSON object with {', '.join(COLUMNS)}, "
                    f"got a {type(row).__name__}"
                )
            missing = [c for c in COLUMNS if c not in row]
            if missing:
                raise UsageError(
                    f"{where}: missing column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}; every line needs {', '.join(COLUMNS)}"
                )
            kinds = {column: _kind(where, column, row[column]) for column in COLUMNS}
            kind = kinds["prompt"]
            if set(kinds.values()) != {kind}:
                raise UsageError(
                    f"{where}: prompt, chosen and rejected must all be text or all be chat "
                    "messages, not a mix"
                )
            file_kind = file_kind or kind
            if kind != file_kind:
                raise UsageError(
                    f"{where}: this row is {kind}, the file's first row is not; use one format "
                    "for the whole file"
                )
            rows.append({c: row[c] for c in COLUMNS})
    if not rows:
        raise UsageError(f"{flag} {path}: the file has no rows")
    return rows


def _kind(where: str, column: str, value: Any) -> str:
    """``"text"`` or ``"chat messages"`` (a list of ``{"role", "content"}``), else one line."""
    if isinstance(value, str):
        if not value.strip():
            raise UsageError(f"{where}: {column} is empty; give every row some text")
        return "text"
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in value
        )
    ):
        return "chat messages"
    raise UsageError(
        f"{where}: {column} must be a string or a list of "
        f'{{"role": ..., "content": ...}} messages, got {json.dumps(value)[:60]}'
    )


def as_text(rows: list[dict[str, Any]], tokenizer: Any, flag: str) -> list[dict[str, str]]:
    """Rows of chat messages as the text the model reads, the way TRL turns a conversational
    preference dataset into text: the prompt through the tokenizer's chat template with the
    generation prompt (or continuing a final assistant message), each answer as what the
    template adds after the prompt. The last prompt message is kept, as ``shown``, for
    tables. Rows of plain text are returned as they are."""
    from itertools import takewhile

    if not rows or isinstance(rows[0]["prompt"], str):
        return rows
    if getattr(tokenizer, "chat_template", None) is None:
        raise UsageError(
            f"{flag} holds chat messages, but the model has no chat template; use a chat "
            "model (e.g. --model Qwen/Qwen2.5-0.5B-Instruct) or rows of plain text"
        )
    texts = []
    for row in rows:
        prompt = row["prompt"]
        last = prompt[-1]["role"]
        if last not in ("user", "tool", "assistant"):
            raise UsageError(
                f"{flag}: a prompt must end with a user, tool or assistant message, not {last!r}"
            )
        text = tokenizer.apply_chat_template(
            prompt,
            tokenize=False,
            add_generation_prompt=last != "assistant",
            continue_final_message=last == "assistant",
        )
        full = {
            c: tokenizer.apply_chat_template(prompt + row[c], tokenize=False)
            for c in ("chosen", "rejected")
        }
        for answer in full.values():  # what both sequences share (a no-op for most templates)
            text = "".join(a for a, _ in takewhile(lambda x: x[0] == x[1], zip(text, answer)))
        texts.append(
            {
                "prompt": text,
                "chosen": full["chosen"][len(text) :],
                "rejected": full["rejected"][len(text) :],
                "shown": prompt[-1]["content"],
            }
        )
    return texts


def split_heldout(
    rows: list[dict[str, str]], fraction: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(train, heldout)``: about ``fraction`` of the rows held out for evaluation, chosen by
    *prompt* (seeded), so that no held-out prompt was seen in training. Fewer than two distinct
    prompts cannot be split: everything trains and nothing is held out."""
    import random

    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    if fraction <= 0 or len(prompts) < 2:
        return rows, []
    random.Random(seed).shuffle(prompts)
    per_prompt: dict[str, int] = {}
    for r in rows:
        per_prompt[r["prompt"]] = per_prompt.get(r["prompt"], 0) + 1
    held: set[str] = set()
    count = 0
    for prompt in prompts[:-1]:  # at least one prompt stays for training
        if count >= fraction * len(rows):
            break
        held.add(prompt)
        count += per_prompt[prompt]
    return [r for r in rows if r["prompt"] not in held], [r for r in rows if r["prompt"] in held]


@dataclass
class EncodedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pairs(tokenizer: Any, rows: list[dict[str, str]]) -> list[EncodedPair]:
    """Token ids of each pair, split as TRL splits them (see the module docstring)."""
    eos = tokenizer.eos_token
    prompts = [r["prompt"] for r in rows]
    chosen = [r["prompt"] + _with_eos(r["chosen"], eos) for r in rows]
    rejected = [r["prompt"] + _with_eos(r["rejected"], eos) for r in rows]
    p_ids = tokenizer(prompts)["input_ids"]
    c_ids = tokenizer(chosen)["input_ids"]
    r_ids = tokenizer(rejected)["input_ids"]
    pairs = []
    for p, c, r in zip(p_ids, c_ids, r_ids):
        n = min(_common_prefix_length(p, c), _common_prefix_length(p, r))
        pairs.append(EncodedPair(p[:n], c[n:], r[n:]))
    return pairs


def _with_eos(text: str, eos: str) -> str:
    return text if text.endswith(eos) else text + eos


def drop_too_long(pairs: list[EncodedPair], max_length: int | None) -> list[EncodedPair]:
    """Pairs whose prompt alone fills ``max_length`` carry no completion token: TRL drops them."""
    if max_length is None:
        return pairs
    return [p for p in pairs if len(p.prompt_ids) < max_length]


def collate(pairs: list[EncodedPair], pad_token_id: int, max_length: int | None) -> dict[str, Any]:
    """``input_ids``, ``attention_mask``, ``completion_mask``: ``[2B, L]``, chosen rows first."""
    import torch

    seqs, masks = [], []
    for key in ("chosen_ids", "rejected_ids"):
        for p in pairs:
            answer = getattr(p, key)
            seqs.append((p.prompt_ids + answer)[:max_length])
            masks.append(([0] * len(p.prompt_ids) + [1] * len(answer))[:max_length])
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    completion_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention_mask[i, : len(s)] = 1
        completion_mask[i, : len(m)] = torch.tensor(m)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
    }


def pack_pairs(
    pairs: list[EncodedPair], pad_token_id: int, max_length: int | None
) -> dict[str, Any]:
    """Each pair as ONE row, its prompt once: ``prompt chosen rejected``, right-padded.

    A mask lets each answer attend to the prompt and to itself only, and the position ids of
    each answer start where the prompt ends, so the model computes exactly what it computes
    for the two sequences ``collate`` makes of the pair, without running the prompt twice and
    with a third fewer tokens. Two more tokens are saved per pair: the last token of each
    answer is not fed at all, since its output predicts nothing and no other token sees it.

    Also returned: the ``collate`` layout (``input_ids``, ``completion_mask``: ``[2B, L]``,
    chosen rows first); ``logits_to_keep`` (an int): only the last columns of the packed rows,
    from the shortest prompt's last token on, predict answer tokens, so only they need the LM
    head; and ``gather_index`` (``[2B, L - first]``, ``first = W - logits_to_keep``): flat
    positions in those kept ``[B, logits_to_keep]`` logits, so that
    ``logits.flatten(0, 1)[gather_index]`` are the logits of ``collate`` columns ``first:``,
    what the exercise's ``sequence_log_probs`` expects (with ``input_ids[:, first:]`` and
    ``completion_mask[:, first:]``, whose column 0 is prompt, so 0).
    """
    import torch

    rows, sequences = [], {}
    for r, p in enumerate(pairs):
        n = len(p.prompt_ids)
        ids, positions, roles = list(p.prompt_ids), list(range(n)), [0] * n
        for role, answer in ((1, p.chosen_ids), (2, p.rejected_ids)):
            answer = answer[: max_length - n] if max_length is not None else answer
            fed = answer[:-1]  # the last answer token: scored, but never fed
            # the column of each token of prompt + answer; the unfed last token's logits are
            # masked out by sequence_log_probs, so any kept column will do: the prompt's last
            columns = list(range(n)) + list(range(len(ids), len(ids) + len(fed))) + [n - 1]
            sequences[role, r] = (p.prompt_ids + answer, columns, n)
            ids += fed
            positions += range(n, n + len(fed))
            roles += [role] * len(fed)
        rows.append((ids, positions, roles))
    width = max(len(ids) for ids, _, _ in rows)
    packed_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    packed_positions = torch.zeros((len(rows), width), dtype=torch.long)
    role = torch.full((len(rows), width), -1, dtype=torch.long)  # 0 prompt, 1/2 answers, -1 pad
    for r, (ids, positions, roles) in enumerate(rows):
        packed_ids[r, : len(ids)] = torch.tensor(ids)
        packed_positions[r, : len(ids)] = torch.tensor(positions)
        role[r, : len(ids)] = torch.tensor(roles)
    query, key = role[:, :, None], role[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    # a token sees the prompt and the earlier tokens of its own answer; padding sees only
    # itself (a query that sees nothing would turn attention into NaN)
    visible = causal & (key >= 0) & ((key == 0) | (key == query))
    visible |= torch.eye(width, dtype=torch.bool)

    first = min(n for _, (_, _, n) in sequences.items()) - 1  # the first logit that is scored
    kept = width - first
    ordered = [(r, sequences[role_, r]) for role_ in (1, 2) for r in range(len(rows))]
    length = max(len(seq) for _, (seq, _, _) in ordered)
    input_ids = torch.full((len(ordered), length), pad_token_id, dtype=torch.long)
    completion_mask = torch.zeros((len(ordered), length), dtype=torch.long)
    gather_index = torch.zeros((len(ordered), length - first), dtype=torch.long)
    for i, (r, (seq, columns, n)) in enumerate(ordered):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        completion_mask[i, n : len(seq)] = 1
        gather_index[i, : len(seq) - first] = r * kept + torch.tensor(columns[first:]) - first
    return {
        "packed_ids": packed_ids,
        "packed_positions": packed_positions,
        "packed_mask": visible[:, None],
        "logits_to_keep": kept,
        "gather_index": gather_index,
        "input_ids": input_ids,
        "completion_mask": completion_mask,
    }

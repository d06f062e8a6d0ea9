"""The DPO plugin's task, data files and model loading: the rule judge, the shipped splits,
JSONL validation, and the ways ``--model`` can be wrong (all offline)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import rlkit_cmd
from rlkit_dpo import task
from rlkit_dpo.data import DEFAULT_HELDOUT, DEFAULT_TRAIN, as_text, load_jsonl, split_heldout
from rlkit_dpo.model import SHIPPED_MODEL_DIR, build_model, load_model, resolve_model

from rlkit.errors import RlkitError, UsageError

QUIET = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


# -- the task and its judge ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (" Sure! The capital of France is Paris.", "polite"),
        ("Sure! A cow says moo.", "polite"),
        (" Ugh! The capital of France is Paris.", "rude"),
        ("Sure! Whatever, a cow says moo.", "rude"),  # any rude word wins
        ("Sure! Paris", "unclear"),  # no full sentence after the opener
        ("The capital of France is Paris.", "unclear"),  # no polite opener
        ("", "unclear"),
    ],
)
def test_judge(answer: str, verdict: str) -> None:
    assert task.judge(answer) == verdict
    assert task.is_preferred(answer) == (verdict == "polite")


def test_shipped_splits_are_the_generated_ones_and_disjoint() -> None:
    train, heldout = task.make_splits()
    assert load_jsonl(DEFAULT_TRAIN) == train
    assert load_jsonl(DEFAULT_HELDOUT) == heldout
    assert len(train) == 336 and len(heldout) == 84
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    for row in train + heldout:
        assert task.judge(row["chosen"]) == "polite"
        assert task.judge(row["rejected"]) == "rude"


def test_sft_corpus_has_both_manners_equally() -> None:
    train, _ = task.make_splits()
    corpus = task.sft_corpus(train)
    polite = sum(t.split("Assistant:")[1].strip().startswith("Sure!") for t in corpus)
    assert polite * 2 == len(corpus)


# -- JSONL validation ----------------------------------------------------------------------
GOOD = {"prompt": "User: hi\nAssistant:", "chosen": " Sure! Hi.", "rejected": " Ugh! Hi."}


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"prompt": "x", "chosen": "y",', "not valid JSON"),
        ('["prompt", "chosen", "rejected"]', "expected a JSON object"),
        ('{"prompt": "x", "chosen": "y"}', "missing column rejected"),
        ('{"prompt": "x", "chosen": "  ", "rejected": "z"}', "chosen is empty"),
        ('{"prompt": 3, "chosen": "y", "rejected": "z"}', "prompt must be a string"),
        ('{"prompt": [{"role": "user"}], "chosen": "y", "rejected": "z"}', "prompt must be a"),
        ('{"prompt": [], "chosen": "y", "rejected": "z"}', "or a list of"),
        (
            '{"prompt": [{"role": "user", "content": "x"}], "chosen": "y", "rejected": "z"}',
            "all be text or all be chat messages",
        ),
        (
            '{"prompt": [{"role": "user", "content": "x"}], '
            '"chosen": [{"role": "assistant", "content": "y"}], '
            '"rejected": [{"role": "assistant", "content": "z"}]}',
            "first row is not",
        ),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _write(tmp_path / "pairs.jsonl", json.dumps(GOOD), "", bad_line)
    with pytest.raises(UsageError) as err:
        load_jsonl(path)
    assert f"{path}:3:" in err.value.message  # the blank line 2 counts
    assert message in err.value.message


def test_missing_or_empty_jsonl(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(UsageError, match="has no rows"):
        load_jsonl(_write(tmp_path / "empty.jsonl", ""))


def test_cli_rejects_bad_data_before_creating_a_run(tmp_path: Path) -> None:
    data = _write(tmp_path / "pairs.jsonl", json.dumps(GOOD), '{"prompt": "x"}')
    out = tmp_path / "run"
    result = rlkit_cmd(
        "train", "dpo", "--backend", "native", "--data", str(data), "--out", str(out), env=QUIET
    )
    assert result.returncode == 2, result.stderr
    assert f"{data}:2: missing columns chosen, rejected" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


# -- chat messages -------------------------------------------------------------------------
#: ChatML, as Qwen's instruct models use it
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chat_rows(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The built-in task's rows as chat messages (one of them a two-turn conversation)."""
    chat = [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"].strip()}],
            "rejected": [{"role": "assistant", "content": r["rejected"].strip()}],
        }
        for r in rows
    ]
    chat[0]["prompt"] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi."},
        *chat[0]["prompt"],
    ]
    return chat


def test_chat_rows_become_the_text_trl_makes_of_them() -> None:
    from trl.data_utils import apply_chat_template

    _, tokenizer = load_model(None)
    tokenizer.chat_template = CHATML
    rows = _chat_rows(load_jsonl(DEFAULT_TRAIN)[:5])
    rows.append({**rows[1], "prompt": [*rows[1]["prompt"], {"role": "assistant", "content": "So"}]})
    texts = as_text(rows, tokenizer, "--data")
    for row, text in zip(rows, texts, strict=True):
        trl_text = apply_chat_template(row, tokenizer)
        assert {c: text[c] for c in ("prompt", "chosen", "rejected")} == trl_text
        assert text["shown"] == row["prompt"][-1]["content"]
    assert texts[1]["prompt"].endswith("<|im_start|>assistant\n")
    assert texts[1]["chosen"].startswith("Sure!")
    plain = load_jsonl(DEFAULT_TRAIN)[:3]
    assert as_text(plain, tokenizer, "--data") == plain


def test_train_on_chat_messages(tmp_path: Path) -> None:
    model, tokenizer = load_model(None)
    tokenizer.chat_template = CHATML
    chat_model = tmp_path / "chat-model"
    model.save_pretrained(chat_model)
    tokenizer.save_pretrained(chat_model)
    data = tmp_path / "chat.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in _chat_rows(load_jsonl(DEFAULT_TRAIN)[:40]))
    )
    args = ("train", "dpo", "--backend", "native", "--data", str(data), "--max-steps", "2")
    no_template = rlkit_cmd(*args, "--out", str(tmp_path / "a"), env=QUIET)
    assert no_template.returncode == 2
    assert "holds chat messages, but the model has no chat template" in no_template.stderr
    assert not (tmp_path / "a").exists()
    result = rlkit_cmd(*args, "--model", str(chat_model), "--out", str(tmp_path / "b"), env=QUIET)
    assert result.returncode == 0, result.stderr
    assert "Holding out 4 of 40 pairs" in result.stdout
    assert "Held-out reward accuracy:" in result.stdout
    assert "im_start" not in result.stdout  # the table shows the question, not the template


def test_split_holds_out_whole_prompts_reproducibly() -> None:
    rows = load_jsonl(DEFAULT_TRAIN)[:60]
    rows += [dict(r, chosen=r["chosen"] + " Twice.") for r in rows[:20]]  # repeated prompts
    train, heldout = split_heldout(rows, 0.25, seed=3)
    assert len(train) + len(heldout) == len(rows)
    assert 0.25 * len(rows) <= len(heldout) < 0.25 * len(rows) + 2  # a prompt has <= 2 rows
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    assert split_heldout(rows, 0.25, seed=3) == (train, heldout)
    assert split_heldout(rows, 0.25, seed=4)[1] != heldout
    assert split_heldout(rows, 0.0, seed=3) == (rows, [])
    assert split_heldout(rows[:1], 0.5, seed=3) == (rows[:1], [])  # one prompt: nothing held out
    assert split_heldout(rows[:2], 0.9, seed=3)[0]  # a prompt always stays for training


def test_own_data_is_split_for_the_evaluation(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in load_jsonl(DEFAULT_TRAIN)[:40]))
    out = tmp_path / "run"
    args = ("train", "dpo", "--backend", "native", "--data", str(data), "--out", str(out))
    result = rlkit_cmd(*args, "--max-steps", "2", "--eval-split", "0.2", env=QUIET)
    assert result.returncode == 0, result.stderr
    assert f"Holding out 8 of 40 pairs of {data}" in result.stdout
    assert "Held-out reward accuracy:" in result.stdout
    assert "Held-out preferred rate" not in result.stdout  # own data: no rule to judge it
    assert "8 held-out prompts" in result.stdout
    again = rlkit_cmd("eval", str(out), env=QUIET)  # the same 8 pairs again
    assert again.returncode == 0, again.stderr
    assert "8 held-out prompts" in again.stdout
    bad = rlkit_cmd(*args[:-1], str(tmp_path / "bad"), "--eval-split", "1", env=QUIET)
    assert bad.returncode == 2 and "--eval-split" in bad.stderr


# -- models --------------------------------------------------------------------------------
def test_shipped_model_loads_offline() -> None:
    model, tokenizer = load_model(None)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert json.loads((SHIPPED_MODEL_DIR / "rlkit_build.json").read_text())["recipe"]["seed"] == 0


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such model folder"):
        resolve_model(str(tmp_path / "missing-model"))
    with pytest.raises(UsageError, match="no such model folder"):
        resolve_model("./also-missing")
    with pytest.raises(UsageError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(RlkitError, match="HF_HUB_OFFLINE is set"):
        load_model("Qwen/Qwen2.5-0.5B-Instruct")
    # and with the Hub merely unreachable (a closed local port stands in for it)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(RlkitError, match="Hub cannot be reached"):
        load_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert time.perf_counter() - start < 20


def test_cli_hub_id_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = rlkit_cmd(
        "train",
        "dpo",
        "--model",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "--out",
        str(out),
        env={**QUIET, "HF_HUB_OFFLINE": "1"},
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--model Qwen/Qwen2.5-0.5B-Instruct" in result.stderr
    assert not out.exists()


def test_build_model_makes_a_loadable_qwen2(tmp_path: Path) -> None:
    tiny = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "steps": 3,
        "batch_size": 4,
    }
    out = build_model(tmp_path / "m", tiny)
    model, tokenizer = load_model(str(out))
    assert model.config.model_type == "qwen2" and model.config.hidden_size == 32
    info = json.loads((out / "rlkit_build.json").read_text())
    assert info["recipe"]["steps"] == 3
    assert tokenizer("User: hi\nAssistant:")["input_ids"]

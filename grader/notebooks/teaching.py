"""Markdown that teaches an exercise, derived from the stub's docstrings (so it cannot drift).

The docstrings are shown as written (they are the course's text, readable as they are), with
``code`` spans and formula blocks kept; then every equation in them is restated in LaTeX, each
with the condition it holds under ("When the episode ended at this step (`dones` true) ...:
y = r"; "if |x| ≤ 1"; "otherwise"), and each function's key equation comes first (its summary
line's, else its formula block, else its ``Math:`` paragraph's first). Every paragraph counts
except ``Shapes:`` and ``Pitfalls:`` (whose "log(0) = −inf" are no formulas to learn). The
conversion is conservative: a formula line that does not convert (unbalanced brackets, prose
only) is reported (``Lesson.skipped``), never rendered wrongly, and stays in the docstring text.
"""

from __future__ import annotations

import re

GREEK = {
    "α": r"\alpha",
    "β": r"\beta",
    "γ": r"\gamma",
    "δ": r"\delta",
    "ε": r"\epsilon",
    "θ": r"\theta",
    "λ": r"\lambda",
    "μ": r"\mu",
    "π": r"\pi",
    "σ": r"\sigma",
    "τ": r"\tau",
    "φ": r"\phi",
    "ψ": r"\psi",
    "ω": r"\omega",
    "Δ": r"\Delta",
    "Π": r"\Pi",
}
SYMBOLS = {
    "·": r" \cdot ",
    "−": "-",
    "≈": r" \approx ",
    "≤": r" \leq ",
    "≥": r" \geq ",
    "→": r" \to ",
    "±": r" \pm ",
    "½": r"\frac{1}{2}",
    "²": "^2",
    "∂": r"\partial ",
    "←": r" \leftarrow ",
    "×": r" \times ",
    "≠": r" \neq ",
    "∞": r"\infty ",
    "∈": r" \in ",
    "≻": r" \succ ",
    "‖": r" \Vert ",
}
#: words that are math in these docstrings (functions and named quantities)
OPERATORS = {"log": r"\log", "exp": r"\exp", "min": r"\min", "max": r"\max"}
MATH_WORDS = {
    "argmax",
    "clip",
    "mean",
    "std",
    "softmax",
    "sigmoid",
    "onehot",
    "logits",
    "mask",
    "done",
    "loss",
    "returns",
    "Huber",
    "E",
}
_LETTERS = "A-Za-z" + "".join(GREEK) + "ĜÂ"
_IDENT = rf"[{_LETTERS}][{_LETTERS}0-9]*(?:_(?:\{{[^{{}}]*\}}|[{_LETTERS}0-9]+))*'*\*?"
_TOKEN = re.compile(
    rf"(?P<space>\s+)|(?P<bigop>[Σ∇](?:_(?:\{{[^{{}}]*\}}|[{_LETTERS}0-9]+'*)|θ)?)|(?P<num>\d+(?:\.\d+)?(?:e-?\d+)?)|(?P<ident>{_IDENT})"
    rf"|(?P<op>[=+\-−·/|()\[\],:≈≤≥±½²∂*'←×≠∞∈≻‖^])|(?P<other>.)"
)


def _ident_latex(word: str, names: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """One identifier: ``G_t``, ``V_{t+1}``, ``πθ_old``, ``max_a'``, ``log_probs``, ``Q*``."""
    star = word.endswith("*")
    word = word.rstrip("*")
    core = word.rstrip("'")
    primes = "'" * (len(word) - len(core))
    parts = core.split("_")
    one_name = len(parts) > 1 and len(parts[0]) > 1 and len(parts[-1]) > 1
    if core in names or one_name and core[0] not in GREEK and "{" not in core:
        out = r"\mathrm{" + core.replace("_", r"\_") + "}" + primes  # one name: ``log_probs``
    else:
        base, _, sub = core.rpartition("_") if "_" in core else (core, "", "")
        out = _base_latex(base, sub)
        if sub and not (base and base[0] in GREEK and len(base) > 1 and base[1] == "θ"):
            if sub.startswith("{"):
                inner = "".join(SYMBOLS.get(c, c) for c in sub[1:-1])
                out += "_{" + inner + primes + "}"
            elif len(sub) == 1 or all(c in GREEK for c in sub):
                out += "_{" + "".join(GREEK.get(c, c) for c in sub) + primes + "}"
            else:
                out += r"_\mathrm{" + sub + "}" + primes
            primes = ""
        out += primes
    return out + ("^*" if star else "")


def _base_latex(word: str, sub: str = "") -> str:
    """A name without its subscript (``sub`` is only used by ``πθ_old``)."""
    if word in OPERATORS:
        return OPERATORS[word]
    if word == "Ĝ":
        return r"\hat{G}"
    if len(word) == 1:
        return GREEK.get(word, word)
    if word[0] in GREEK:
        rest = word[1:]
        if rest[0] == "θ":  # πθ: the policy's parameters are a subscript
            inner = r"\theta" + rest[1:] + (r"_\mathrm{" + sub + "}" if sub else "")
            return GREEK[word[0]] + "_{" + inner + "}"
        if all(c in GREEK for c in rest):  # γλ: a product
            return " ".join(GREEK[c] for c in word)
        return GREEK[word[0]] + r"_\mathrm{" + rest + "}"  # πref
    return r"\mathrm{" + word.replace("_", r"\_") + "}"


def _tokens(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(text)]


def _is_math_word(word: str, names: set[str]) -> bool:
    core = word.rstrip("*'")
    base = core.split("_")[0]
    return (
        len(base) == 1
        or "_" in core
        or any(c in GREEK for c in core)
        or base in OPERATORS
        or base in MATH_WORDS
        or core in names
        or base == "Ĝ"
    )


def _balanced(tokens: list[tuple[str, str]]) -> bool:
    depth = 0
    for _, t in tokens:
        depth += t in ("(", "[")
        depth -= t in (")", "]")
        if depth < 0:
            return False
    return depth == 0


def to_latex(tokens: list[tuple[str, str]], names: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    out: list[str] = []
    braces = _superscript_groups(tokens)
    for index, (kind, t) in enumerate(tokens):
        if index in braces:
            out.append(braces[index])
            continue
        if kind == "space":
            out.append(" ")
        elif kind == "ident":
            out.append(_ident_latex(t, names))
        elif kind == "bigop":
            op = r"\sum" if t[0] == "Σ" else r"\nabla"
            sub = t[1:].lstrip("_")
            if sub.startswith("{"):
                sub = sub[1:-1]
            out.append(
                op + ("_{" + "".join(GREEK.get(c, c) for c in sub) + "}" if sub else "") + " "
            )
        elif kind == "num":
            m = re.fullmatch(r"(\d+(?:\.\d+)?)e(-?\d+)", t)
            if m is None:
                out.append(t)
            else:
                factor = "" if m[1] == "1" else m[1] + r" \cdot "
                out.append(factor + "10^{" + m[2] + "}")
        else:
            out.append(SYMBOLS.get(t, t))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _superscript_groups(tokens: list[tuple[str, str]]) -> dict[int, str]:
    """``e^(−z)``: the parentheses of a superscript's group become LaTeX braces."""
    out: dict[int, str] = {}
    for i, (_, t) in enumerate(tokens):
        if t != "^" or i + 1 >= len(tokens) or tokens[i + 1][1] != "(":
            continue
        depth = 0
        for j in range(i + 1, len(tokens)):
            depth += tokens[j][1] == "("
            depth -= tokens[j][1] == ")"
            if depth == 0:
                out[i + 1], out[j] = "{", "}"
                break
    return out


def find_equations(text: str, names: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The equations (``lhs = rhs``) in a piece of prose, as LaTeX."""
    tokens = _tokens(text)

    def is_math(i: int) -> bool:
        kind, t = tokens[i]
        if kind == "ident":
            return _is_math_word(t, names)
        return kind in ("space", "num", "op", "bigop") and t not in ",:"

    found: list[tuple[int, int]] = []
    for i, (_, t) in enumerate(tokens):
        if t != "=" or any(a <= i < b for a, b in found):
            continue
        # extend left and right over math tokens; commas and colons only inside brackets
        lo, depth = i, 0
        while lo > 0:
            kind, tok = tokens[lo - 1]
            if tok in ")]":
                depth += 1
            elif tok in "([":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(lo - 1) and not (depth > 0 and tok in ",:"):
                break
            lo -= 1
        hi, depth = i + 1, 0
        while hi < len(tokens):
            kind, tok = tokens[hi]
            if tok in "([":
                depth += 1
            elif tok in ")]":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(hi) and not (depth > 0 and tok in ",:"):
                break
            hi += 1
        while lo < i and tokens[lo][0] == "space":
            lo += 1
        while hi > i + 1 and tokens[hi - 1][0] == "space":
            hi -= 1
        span = tokens[lo:hi]
        lhs = [t for t in tokens[lo:i] if t[0] != "space"]
        rhs = [t for t in tokens[i + 1 : hi] if t[0] != "space"]
        if not lhs or not rhs or not _balanced(span) or len(rhs) == 1 and rhs[0][1] in "−-":
            continue
        found.append((lo, hi))
    return [to_latex(tokens[a:b], names) for a, b in found]


def _math_paragraph(doc: str) -> str:
    """The ``Math:`` paragraph of a docstring ('' when it has none)."""
    for para in re.split(r"\n\s*\n", doc):
        if para.lstrip().startswith("Math:"):
            return para.lstrip()[len("Math:") :]
    return ""


def _formula_lines(para: str) -> list[str]:
    """Indented lines of a paragraph; a block with a continuation line (no ``=``, e.g. a case
    split) is left to the code block."""
    block = [line for line in para.splitlines() if line.startswith((" ", "\t"))]
    if not block or not all("=" in line for line in block):
        return []
    # a trailing remark after two spaces, "(A_T = 0, computed backwards in time)", stays prose
    return [re.split(r"\s{2,}\(", line.strip())[0] for line in block]


def formulas(doc: str, names: set[str] = frozenset(), everywhere: bool = False) -> list[str]:  # type: ignore[assignment]
    """The docstring's equations in LaTeX: summary line, ``Math:`` paragraph, formula lines
    (``everywhere``: every paragraph, for a module docstring that has no ``Math:``)."""
    if not doc:
        return []
    summary = re.split(r"\.\s|\.$", doc.split("\n\n")[0].replace("\n", " "))[0]
    para = doc if everywhere else _math_paragraph(doc)
    lines = _formula_lines(para)
    prose = " ".join(line.strip() for line in para.splitlines() if not line.startswith((" ", "\t")))
    found: list[str] = []
    for piece in [summary, *(re.split(r"(?<!\d)\.\s", prose)), *lines]:
        # a remark after two or more spaces (``  (a "log-sum-exp")``) is not part of it
        piece = re.split(r"\s{2,}\(", piece)[0]
        for eq in find_equations(piece, names):
            if eq not in found:
                found.append(eq)
    return found


def markdown_docstring(doc: str) -> str:
    """A docstring as markdown: ``x`` → `x`; indented (formula) lines → a code block."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            width = min(len(b) - len(b.lstrip()) for b in block)
            out.extend(["", "```text", *(b[width:] for b in block), "```", ""])
            block.clear()

    for line in doc.splitlines():
        if line.startswith((" ", "\t")) and line.strip():
            block.append(line.rstrip())
            continue
        flush()
        out.append(re.sub(r"``(.+?)``", r"`\1`", line))
    flush()
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def formula_block(equations: list[str]) -> str:
    if not equations:
        return ""
    body = "\n\n".join(f"$$ {eq} $$" for eq in equations)
    return "**The formulas:**\n\n" + body


# ----------------------------------------------------------------------------- lessons

from dataclasses import dataclass, field  # noqa: E402

#: words that start a clause saying when a formula holds
_CONDITION_WORDS = ("when", "if", "with", "otherwise", "unless", "where", "once", "for", "while")
#: connectives left over between a condition and its formula ("..., so G_t = r_t")
_CONNECTIVES = ("so", "then", "and", "i.e.", "that is")
#: paragraphs whose equations are not formulas to learn
_NOT_FORMULAS = ("Shapes:", "Pitfall", "Fill in")
#: a binary operator: what makes an expression without "=" a formula (not just a name)
_BINARY = {"·", "+", "−", "-", "/", "*"}


@dataclass(frozen=True)
class Formula:
    """One equation restated: its LaTeX and, in the course's words, when it holds."""

    latex: str
    #: the clause before it in its sentence ("When `dones[t]` is true ..."), or ""
    before: str = ""
    #: a remark after it on its formula line ("if |x| ≤ 1", "otherwise"), or ""
    after: str = ""

    def markdown(self) -> str:
        math = f"$$ {self.latex} $$"
        if self.before:
            math = f"{_capital(_literals(self.before))}: {math}"
        if self.after:
            math = f"{math} {_literals(self.after)}"
        return math


def _literals(text: str) -> str:
    """The docstrings' ``code`` as Markdown's `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


@dataclass
class Lesson:
    """The formulas of one docstring: the key equation(s) and all the others, and the formula
    lines that could not be restated (shown as written in the text above)."""

    key: list[Formula] = field(default_factory=list)
    others: list[Formula] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Formula]:
        return [*self.key, *self.others]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _spans(tokens: list[tuple[str, str]], names: set[str]) -> list[tuple[int, int]]:
    """The (lo, hi) token spans of the equations in ``tokens`` (as ``find_equations``)."""

    def is_math(i: int) -> bool:
        kind, t = tokens[i]
        if kind == "ident":
            return _is_math_word(t, names)
        return kind in ("space", "num", "op", "bigop") and t not in ",:"

    found: list[tuple[int, int]] = []
    for i, (_, t) in enumerate(tokens):
        if t != "=" or any(a <= i < b for a, b in found):
            continue
        lo, depth = i, 0
        while lo > 0:
            _, tok = tokens[lo - 1]
            if tok in ")]":
                depth += 1
            elif tok in "([":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(lo - 1) and not (depth > 0 and tok in ",:"):
                break
            lo -= 1
        hi, depth = i + 1, 0
        while hi < len(tokens):
            _, tok = tokens[hi]
            if tok in "([":
                depth += 1
            elif tok in ")]":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(hi) and not (depth > 0 and tok in ",:"):
                break
            hi += 1
        while lo < i and tokens[lo][0] == "space":
            lo += 1
        while hi > i + 1 and tokens[hi - 1][0] == "space":
            hi -= 1
        lhs = [t for t in tokens[lo:i] if t[0] != "space"]
        rhs = [t for t in tokens[i + 1 : hi] if t[0] != "space"]
        if (
            not lhs
            or not rhs
            or not _balanced(tokens[lo:hi])
            or len(rhs) == 1
            and rhs[0][1] in "−-"
        ):
            continue
        found.append((lo, hi))
    return found


def _text(tokens: list[tuple[str, str]]) -> str:
    return "".join(t for _, t in tokens)


def _condition(before: str) -> str:
    """The clause before a formula, when it says when the formula holds ("With `normalize`
    (the default)", "When the episode ended at this step ... there is no next state")."""
    text = before.strip().rstrip(",:;").strip()
    if text.startswith("Math:"):
        text = text[len("Math:") :].strip()
    clauses = [c.strip() for c in re.split(r"[,;]\s+", text) if c.strip()]
    while clauses and clauses[-1].lower() in _CONNECTIVES:
        clauses.pop()
    if not clauses:
        return ""
    clause = clauses[-1]
    # a leading "When ... , " clause holds for the whole rest: take it with what follows
    for i, c in enumerate(clauses):
        if c.split(" ", 1)[0].lower() in _CONDITION_WORDS:
            clause = ", ".join(clauses[i:])
            break
    else:
        return ""
    words = clause.split()
    if len(words) < 2 and words[0].lower() != "otherwise":
        return ""  # "with" alone says nothing
    return clause.rstrip(".:")


def _is_rhs_trivial(tokens: list[tuple[str, str]], i_eq: int, hi: int) -> bool:
    rhs = [t for t in tokens[i_eq + 1 : hi] if t[0] != "space"]
    return len(rhs) == 1 and rhs[0][0] in ("num", "ident")


def _drop_remarks(text: str) -> str:
    """Prose without remarks set off by two or more spaces (``   (a "log-sum-exp")``)."""
    return re.sub(r"\s{2,}\([^()]*\)", "", text)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<![\d.])\.\s+(?=[A-Z`(*])|(?<=[a-z)\]`*])\.$", text)


def _prose_formulas(text: str, names: set[str]) -> list[tuple[Formula, bool]]:
    """(formula, trivial) for each equation in a piece of prose, with its condition."""
    out = []
    for sentence in _sentences(_drop_remarks(text)):
        tokens = _tokens(sentence)
        start = 0
        for lo, hi in _spans(tokens, names):
            i_eq = next(i for i in range(lo, hi) if tokens[i][1] == "=")
            before = _condition(_text(tokens[start:lo]))
            formula = Formula(to_latex(tokens[lo:hi], names), before)
            out.append((formula, _is_rhs_trivial(tokens, i_eq, hi)))
            start = hi
    return out


def _all_math(tokens: list[tuple[str, str]], names: set[str]) -> bool:
    return all(k != "other" and (k != "ident" or _is_math_word(t, names)) for k, t in tokens)


def _ends_expression(kind: str, tok: str, depth: int, names: set[str]) -> bool:
    """A token an expression without "=" stops before: prose, "=", a comma outside brackets."""
    if kind == "ident":
        return not _is_math_word(tok, names)
    return kind == "other" or tok == "=" or (tok in ",:" and depth == 0)


def _expression(text: str, names: set[str], anchored: bool = False) -> str | None:
    """The LaTeX of the first formula without "=" in ``text`` (``−mean(min(r·A, ...))``,
    ``Σ_t mask[:, t] · log softmax(...)``): a balanced run of math tokens, starting with a
    minus, a sum or a function applied, that holds a binary operator."""
    tokens = _tokens(_drop_remarks(text))
    n = len(tokens)
    for start in range(n):
        kind, t = tokens[start]
        if anchored and any(k != "space" for k, _ in tokens[:start]):
            break  # only an expression the text starts with
        call = kind == "ident" and start + 1 < n and tokens[start + 1][1] in "(["
        if not (kind == "bigop" or t in ("−", "-") or call and _is_math_word(t, names)):
            continue
        i, depth = start, 0
        while i < n:
            k, tok = tokens[i]
            if tok in "([":
                depth += 1
            elif tok in ")]":
                if depth == 0:
                    break
                depth -= 1
            elif _ends_expression(k, tok, depth, names):
                break
            i += 1
        span = tokens[start:i]
        while span and (span[-1][0] == "space" or span[-1][1] in "−-+·/"):
            span = span[:-1]
        solid = [t for k, t in span if k != "space"]
        binary = [t for t in solid[1:] if t in _BINARY]
        if span and _balanced(span) and binary and len(solid) >= 4:
            return to_latex(span, names)
    return None


def _block_formulas(para: str, names: set[str]) -> tuple[list[Formula], list[str]]:
    """The formula lines of a paragraph (its indented lines): one formula per line; a line
    starting with an operator continues the formula above, a line without "=" is a case of the
    one above (``|x| − ½     otherwise``); a remark after two or more spaces is its condition
    (another formula when it has an "=" and no parentheses). Also: the lines that did not
    convert (a formula whose continuation did not convert is left out whole)."""
    formulas: list[Formula] = []
    skipped: list[str] = []
    last: tuple[list[tuple[str, str]], list[tuple[str, str]], str] | None = None  # lhs, rhs, remark

    def emit() -> None:
        if last is not None:
            lhs, rhs, remark = last
            formulas.append(Formula(to_latex([*lhs, ("space", " "), *rhs], names), after=remark))

    pieces: list[str] = []
    for raw in para.splitlines():
        if not raw.startswith((" ", "\t")) or not raw.strip():
            continue
        body, _, remark = (re.split(r"(\s{2,})", raw.strip(), maxsplit=1) + ["", ""])[:3]
        remark = remark.strip()
        if "=" in remark and not remark.startswith("("):
            pieces += [body, remark]  # two formulas on one line
        else:
            pieces.append(body + ("\0" + remark if remark else ""))
    for piece in pieces:
        body, _, remark = piece.partition("\0")
        tokens = _tokens(body.strip().rstrip(".,;"))
        solid = [t for t in tokens if t[0] != "space"]
        if solid and solid[0][1] in _BINARY | {"−"} and last is not None:
            if _all_math(tokens, names):  # "+ β·KL": the formula above goes on
                lhs, rhs, old = last
                last = (lhs, [*rhs, ("space", " "), *tokens], remark or old)
            else:
                skipped.append(_text([*last[0], ("space", " "), *last[1]]) + " " + body.strip())
                last = None
            continue
        spans = _spans(tokens, names)
        if spans and spans[0] == (0 if tokens[0][0] != "space" else 1, len(tokens)):
            emit()
            lo, hi = spans[0]
            i_eq = next(i for i in range(lo, hi) if tokens[i][1] == "=")
            last = (tokens[lo : i_eq + 1], tokens[i_eq + 1 : hi], remark)
            continue
        if not spans and last is not None and solid and _all_math(tokens, names):
            emit()  # a case of the formula above: the same left side
            last = (last[0], tokens, remark)
            continue
        emit()
        last = None
        skipped.append(body.strip() + (f"  {remark}" if remark else ""))
    emit()
    return formulas, skipped


def _paragraphs(doc: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", doc) if p.strip()]


#: a name the docstring defines: ``lp = log π(...)``, ``k3 = exp(...)``
_DEFINED = re.compile(r"(?<![\w.`])([A-Za-z][A-Za-z0-9_]*)\s*=\s")


def defined_names(doc: str) -> set[str]:
    """Names the docstring gives a value (``with lp = log π(y_t|...)``): math from then on."""
    found = {m.group(1) for m in _DEFINED.finditer(doc)}
    return {n for n in found if not _is_math_word(n, set()) and n not in ("is", "an")}


def lesson(doc: str, function: str = "", names: set[str] = frozenset()) -> Lesson:  # type: ignore[assignment]
    """The formulas of a docstring (a function's, or with ``function`` "" a module's): the key
    equation(s) first, then every other equation, each with its condition."""
    out = Lesson()
    if not doc:
        return out
    names = set(names) | defined_names(doc)
    paragraphs = _paragraphs(doc)
    summary = re.split(r"\.\s|\.$", paragraphs[0].replace("\n", " "))[0] if function else ""
    found: list[Formula] = []
    block_first: list[Formula] = []
    any_block: list[Formula] = []  # a docstring without a ``Math:`` paragraph (a plugin's)
    math_first: Formula | None = None
    math_expression: str | None = None
    in_math = False
    for para in paragraphs:
        stripped = para.lstrip()
        in_math = stripped.startswith("Math:") or in_math and not re.match(r"\w+:", stripped)
        if stripped.startswith(_NOT_FORMULAS):
            continue
        lines = para.splitlines()
        prose = " ".join(ln.strip() for ln in lines if not ln.startswith((" ", "\t")))
        for formula, trivial in _prose_formulas(prose, names):
            if trivial and not formula.before:
                continue  # "(δ = 1)": a parameter, not a formula to learn
            found.append(formula)
            if function and in_math and math_first is None:
                math_first = formula
        if function and stripped.startswith("Math:") and math_expression is None:
            math_expression = _expression(prose[len("Math:") :], names, anchored=True)
        blocks, skipped = _block_formulas(para, names)
        found += blocks
        out.skipped += skipped
        if function and blocks and not block_first and in_math:
            block_first = blocks
        if function and blocks and not any_block:
            any_block = blocks
    if function:
        out.key = _key(function, summary, found, block_first, math_first, math_expression, names)
        if not out.key:  # no Math: paragraph: its first formula block, else its first formula
            out.key = any_block or [Formula(f.latex) for f in found[:1]]
    seen = {f.latex for f in out.key}
    for f in found:
        if f.latex not in seen:
            seen.add(f.latex)
            out.others.append(f)
    return out


def _key(
    function: str,
    summary: str,
    found: list[Formula],
    block_first: list[Formula],
    math_first: Formula | None,
    math_expression: str | None,
    names: set[str],
) -> list[Formula]:
    """A function's key equation(s): its summary line's equation; else the formula its summary
    names without "=" (``−mean(min(r·A, ...))``: the formula in the text that holds it, else
    that expression for the function); else its formula block; else its ``Math:`` paragraph's
    first equation, or expression."""
    own = _ident_latex(function, {function})
    for formula, trivial in _prose_formulas(summary, names):
        if not trivial:
            return [Formula(formula.latex)]
    expression = _expression(summary, names)
    if expression:
        core = expression.lstrip("-").strip()
        holding = [f for f in [*block_first, *found] if core in f.latex.split("=", 1)[-1]]
        return [Formula(holding[0].latex)] if holding else [Formula(f"{own} = {expression}")]
    if block_first:
        return block_first
    if math_first is not None:
        return [Formula(math_first.latex)]
    if math_expression:
        left = summary.split(":", 1)[0] if ":" in summary else ""
        tokens = _tokens(left)
        lhs = to_latex(tokens, names) if left and _all_math(tokens, names) else own
        return [Formula(f"{lhs} = {math_expression}")]
    return []


def lesson_block(lesson: Lesson, key_title: str = "Key equation") -> str:
    """The formulas as Markdown: the key equation(s), then the others with their conditions."""
    parts = []
    if lesson.key:
        title = key_title + ("s" if len(lesson.key) > 1 else "")
        parts.append(f"**{title}:**")
        parts += [f.markdown() for f in lesson.key]
    if lesson.others:
        parts.append(
            "**The formulas**, restated from the text above with when each holds:"
            if lesson.key
            else "**The formulas**, restated from the text above:"
        )
        parts += [f.markdown() for f in lesson.others]
    return "\n\n".join(parts)

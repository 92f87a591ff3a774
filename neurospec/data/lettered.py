"""Multiple-choice items as prompts: the bare question, the lettered prompt, and the token of each option letter.

    from neurospec.data.lettered import bare_question, encode_lettered, letter_token_ids, lettered_prompt
    lettered_prompt(item)                           # "question\\nA) ..\\nB) ..\\nAnswer:"
    letter_token_ids(tok, "Answer:", "AB")          # the ids of " A" and " B" (or "A", "B"), per tokenizer
    encode_lettered(tok, items, fmt=fmt)            # [(EncodedPrompt, [letter ids]), ...]

Scoring (:mod:`neurospec.evaluate.scoring`) and attribution (:mod:`neurospec.measure.attribution`) both read
an answer as the next-token probability of its letter after these prompts.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, encode
from neurospec.util.errors import NeurospecError


def bare_question(item: MCItem) -> str:
    """The item's question alone (no options): the prompt of option log-likelihood scoring."""
    return item.question


bare_question.name = "question"  # type: ignore[attr-defined]


def lettered_prompt(item: MCItem, letters: str = "ABCDEFGHIJ") -> str:
    """``question\\nA) ..\\nB) ..\\nAnswer:`` (the INCLUDE-style prompt)."""
    if len(item.options) > len(letters):
        raise NeurospecError(f"item has {len(item.options)} options but only {len(letters)} letters")
    lines = [item.question] + [f"{letter}) {option}" for letter, option in zip(letters, item.options)]
    return "\n".join(lines) + "\nAnswer:"


def _appended_token(tokenizer, prefix: str, letter: str) -> int | None:
    before = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    after = tokenizer(prefix + letter, add_special_tokens=False)["input_ids"]
    if len(after) == len(before) + 1 and after[:len(before)] == before:
        return int(after[-1])
    return None


def letter_token_ids(tokenizer, prompt_end: str, letters: Sequence[str],
                     form: Literal["auto", "bare", "space"] = "auto") -> list[int]:
    """The single token each letter is, right after ``prompt_end`` ("A" or " A", per tokenizer).

    ``auto`` uses " A" after a prompt that ends in a non-space character when every letter is one
    token that way (``Answer: A``), else "A" (after a space, a newline, or a prefill such as
    ``{"answer_choice":"``). A letter that is not exactly one appended token is an error.
    """
    tail = prompt_end[-24:]
    forms = {"bare": [""], "space": [" "], "auto": [" ", ""] if tail and not tail[-1].isspace() and
             not tail.endswith('"') else [""]}[form]
    for separator in forms:
        ids = [_appended_token(tokenizer, tail, separator + letter) for letter in letters]
        if all(i is not None for i in ids):
            if len(set(ids)) != len(ids):
                raise NeurospecError(f"letters {list(letters)} do not map to distinct tokens")
            return ids  # type: ignore[return-value]
    shown = {letter: tokenizer.tokenize(tail + forms[-1] + letter)[-3:] for letter in letters}
    raise NeurospecError(
        f"option letters are not single tokens after {tail!r} for this tokenizer ({shown}); "
        "use other letters, or score the options as continuations (choose_by_loglikelihood)"
    )


def encode_lettered(tokenizer, items: Sequence[MCItem], *, fmt: PromptFormat = PLAIN,
                    prompt: Callable[[MCItem], str] = lettered_prompt, letters: str = "ABCDEFGHIJ",
                    form: Literal["auto", "bare", "space"] = "auto") -> list[tuple[EncodedPrompt, list[int]]]:
    """Each item's prompt, encoded, with the token id of each of its option letters after that prompt."""
    cache: dict[tuple[str, int], list[int]] = {}
    out = []
    for item in items:
        encoded = encode(tokenizer, prompt(item), fmt)
        if len(encoded) == 0:
            raise NeurospecError(f"item {item.id or item.question[:40]!r}: the prompt encodes to no tokens, so no "
                                 "position predicts its answer")
        key = (encoded.text[-24:], len(item.options))
        if key not in cache:
            cache[key] = letter_token_ids(tokenizer, key[0], letters[:len(item.options)], form)
        out.append((encoded, cache[key]))
    return out

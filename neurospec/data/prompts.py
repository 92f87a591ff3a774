"""How text reaches the model: plain text or a chat template, with every token's role recorded.

    from neurospec.data.prompts import PromptFormat, encode, collate
    chat = PromptFormat.chat(prefill='{"answer_choice":"')           # the culture method's input
    item = encode(tokenizer, "Which dish is ...? A) ... D) ...", chat)
    item.roles        # per token: "wrapper", "text", "prefill" or "continuation"
    item.answer_position                                            # last prompt token: predicts the answer
    batch = collate([item, ...], pad_id=ensure_pad_token(tokenizer), side="left")
    batch.input_ids, batch.attention_mask, batch.role_mask("text"), batch.continuation_start

Roles (METHODS section 0b): ``wrapper`` tokens come from the template or the tokenizer (BOS, turn
markers, a system prompt), ``text`` tokens from the caller's text (the sentence, the question),
``prefill`` from a forced start of the assistant's answer, ``continuation`` from a continuation that
is scored. They are computed from the tokenizer's character offsets of the rendered prompt, so
"sentence tokens only" and "answer position" are read off, not guessed.

A continuation is encoded on its own and appended (as lm-eval does), so its tokens are exactly the
continuation's; trailing spaces of the prompt move to the start of the continuation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import torch

from neurospec.core.forward import accepts
from neurospec.util.errors import NeurospecError

ROLES: tuple[str, ...] = ("pad", "wrapper", "text", "prefill", "continuation")
"""Role codes in :class:`Batch`: ``ROLES.index(role)``; 0 is padding."""

SystemPolicy = Literal["auto", "keep", "merge", "drop"]
_SLOT = "\u2063neurospec-slot\u2063"  # stands in for the user's text while locating it in a template


@dataclass(frozen=True)
class PromptFormat:
    """How a text becomes a prompt. ``PromptFormat()`` is plain text (the tokenizer adds its BOS).

    ``PromptFormat.chat(system=..., prefill=...)`` renders the tokenizer's chat template with
    ``add_generation_prompt``, thinking switched off where the template has the switch
    (``enable_thinking=False``), and an optional assistant prefill. ``system_policy``: ``auto``
    keeps a system turn and, for templates that reject one (Gemma-2), puts the system text at the
    start of the user turn; ``keep`` never merges (the template's error is raised), ``merge``
    always merges, ``drop`` leaves the system text out.
    """

    kind: Literal["plain", "chat"] = "plain"
    system: str | None = None
    system_policy: SystemPolicy = "auto"
    add_generation_prompt: bool = True
    thinking: bool | None = False
    prefill: str = ""
    add_special_tokens: bool = True

    @classmethod
    def chat(cls, **options) -> "PromptFormat":
        return cls(kind="chat", **options)

    def __post_init__(self) -> None:
        if self.kind not in ("plain", "chat"):
            raise NeurospecError(f"unknown prompt kind {self.kind!r}: use 'plain' or 'chat'")
        if self.system_policy not in ("auto", "keep", "merge", "drop"):
            raise NeurospecError(f"unknown system_policy {self.system_policy!r}: use auto, keep, merge or drop")
        if self.kind == "plain" and self.system:
            raise NeurospecError("a system prompt needs a chat template: use PromptFormat.chat(system=...)")


PLAIN = PromptFormat()


@dataclass
class EncodedPrompt:
    """Token ids of one prompt (and continuation), with the role of every token."""

    input_ids: list[int]
    roles: list[str]
    text: str = field(repr=False, default="")
    straddling: int = 0  # tokens whose characters belong to two roles (counted with the role of their last one)

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.roles):
            raise NeurospecError(f"{len(self.input_ids)} token ids but {len(self.roles)} roles")

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def prompt_length(self) -> int:
        """Number of tokens before the continuation (all tokens when there is none)."""
        return next((i for i, role in enumerate(self.roles) if role == "continuation"), len(self.roles))

    @property
    def answer_position(self) -> int:
        """Index of the last prompt token: its logits predict the first continuation (or answer) token."""
        if self.prompt_length == 0:
            raise NeurospecError("the prompt has no tokens, so no position predicts the answer")
        return self.prompt_length - 1

    def span(self, role: str) -> tuple[int, int]:
        """(start, end) of the tokens of ``role``; an error when they are absent or not contiguous."""
        where = [i for i, r in enumerate(self.roles) if r == role]
        if not where:
            raise NeurospecError(f"no {role!r} tokens in this prompt (roles present: {sorted(set(self.roles))})")
        if where[-1] - where[0] + 1 != len(where):
            raise NeurospecError(f"the {role!r} tokens are not contiguous in this prompt")
        return where[0], where[-1] + 1


def ensure_pad_token(tokenizer) -> int:
    """The tokenizer's pad id; where it has none (Llama-3), its EOS (or UNK) becomes the pad token."""
    if tokenizer.pad_token_id is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise NeurospecError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no pad, EOS or UNK token to pad with; "
                "set tokenizer.pad_token before scoring"
            )
        tokenizer.pad_token = fallback
    return int(tokenizer.pad_token_id)


# --------------------------------------------------------------------------------------------
# Rendering: the prompt string and the character span of every role


def _template_kwargs(fmt: PromptFormat) -> dict:
    return {} if fmt.thinking is None else {"enable_thinking": fmt.thinking}


def _render_messages(tokenizer, messages: list[dict], fmt: PromptFormat) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise NeurospecError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template: use PromptFormat() "
            "(plain text) or set tokenizer.chat_template"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=fmt.add_generation_prompt, **_template_kwargs(fmt)
    )


def _messages(text: str, fmt: PromptFormat, merge_system: bool) -> list[dict]:
    if not fmt.system or fmt.system_policy == "drop":
        return [{"role": "user", "content": text}]
    if merge_system:
        return [{"role": "user", "content": f"{fmt.system}\n\n{text}"}]
    return [{"role": "system", "content": fmt.system}, {"role": "user", "content": text}]


def _render_chat_with_slot(tokenizer, fmt: PromptFormat) -> tuple[str, str, bool]:
    """Render the template around a placeholder: (text before it, text after it, system merged?)."""
    merge = fmt.system_policy == "merge"
    try:
        probe = _render_messages(tokenizer, _messages(_SLOT, fmt, merge), fmt)
    except Exception as err:  # templates reject a system turn by raising (jinja's raise_exception)
        if not (fmt.system and fmt.system_policy == "auto" and not merge):
            raise NeurospecError(f"the chat template failed to render: {err}") from err
        merge = True
        probe = _render_messages(tokenizer, _messages(_SLOT, fmt, merge), fmt)
    if probe.count(_SLOT) != 1:
        raise NeurospecError(
            "the chat template repeats or rewrites the user message, so the text tokens cannot be located; "
            "use PromptFormat() (plain text) for this tokenizer"
        )
    before, _, after = probe.partition(_SLOT)
    return before, after, merge


def render(tokenizer, text: str, fmt: PromptFormat = PLAIN) -> tuple[str, list[tuple[int, int, str]]]:
    """The prompt string and its character spans ``(start, end, role)``, in order."""
    if fmt.kind == "plain":
        spans = [(0, len(text), "text")]
        rendered = text
    else:
        before, after, merge = _render_chat_with_slot(tokenizer, fmt)
        real = _render_messages(tokenizer, _messages(text, fmt, merge), fmt)
        for content in (text, text.strip()):
            if real == before + content + after:
                break
        else:
            raise NeurospecError("the chat template changes the message text, so its tokens cannot be located")
        spans = [(0, len(before), "wrapper"), (len(before), len(before) + len(content), "text"),
                 (len(before) + len(content), len(real), "wrapper")]
        rendered = real
    if fmt.prefill:
        spans.append((len(rendered), len(rendered) + len(fmt.prefill), "prefill"))
        rendered += fmt.prefill
    return rendered, [s for s in spans if s[1] > s[0]]


# --------------------------------------------------------------------------------------------
# Tokenising with roles


def _role_at(spans: list[tuple[int, int, str]], char: int) -> str:
    for start, end, role in spans:
        if start <= char < end:
            return role
    return "wrapper"


def _tokenize_with_roles(tokenizer, rendered: str, spans, add_special_tokens: bool) -> tuple[list[int], list[str], int]:
    if not getattr(tokenizer, "is_fast", False):
        raise NeurospecError(
            f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer: token roles need character offsets "
            "(load it with use_fast=True)"
        )
    encoding = tokenizer(rendered, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    roles, straddling = [], 0
    for start, end in encoding["offset_mapping"]:
        if end <= start:  # a special token the tokenizer added (BOS): no characters
            roles.append("wrapper")
            continue
        role = _role_at(spans, end - 1)
        straddling += _role_at(spans, start) != role
        roles.append(role)
    return list(encoding["input_ids"]), roles, straddling


def encode(tokenizer, text: str, fmt: PromptFormat = PLAIN, continuation: str | None = None) -> EncodedPrompt:
    """Tokenise ``text`` as ``fmt`` says, with an optional ``continuation`` appended; roles per token."""
    rendered, spans = render(tokenizer, text, fmt)
    if continuation is not None:
        stripped = rendered.rstrip(" ")
        if len(stripped) < len(rendered):  # trailing spaces belong to the continuation (lm-eval's convention)
            continuation = rendered[len(stripped):] + continuation
            spans = [(s, min(e, len(stripped)), r) for s, e, r in spans if s < len(stripped)]
            rendered = stripped
    special = fmt.add_special_tokens and fmt.kind == "plain"  # a rendered template carries its own BOS
    ids, roles, straddling = _tokenize_with_roles(tokenizer, rendered, spans, special)
    if continuation:
        extra = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        ids, roles = ids + list(extra), roles + ["continuation"] * len(extra)
    return EncodedPrompt(ids, roles, rendered + (continuation or ""), straddling)


def encode_many(tokenizer, texts: Sequence[str], fmt: PromptFormat = PLAIN,
                continuations: Sequence[str | None] | None = None) -> list[EncodedPrompt]:
    """:func:`encode` for each text (and continuation)."""
    continuations = continuations if continuations is not None else [None] * len(texts)
    if len(continuations) != len(texts):
        raise NeurospecError(f"{len(texts)} prompts but {len(continuations)} continuations")
    return [encode(tokenizer, t, fmt, c) for t, c in zip(texts, continuations)]


# --------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    """Padded token ids with their masks; ``roles`` holds role codes (``ROLES``), 0 at padding.

    ``continuation_start[i]`` is the column where row i's continuation begins (its prompt end);
    pass it to :func:`neurospec.core.hooks.prompt_boundary` so position modes mean the same here as in
    generation.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    roles: torch.Tensor
    continuation_start: torch.Tensor
    side: str

    def role_mask(self, role: str) -> torch.Tensor:
        return self.roles == ROLES.index(role)

    @property
    def answer_columns(self) -> torch.Tensor:
        """Column of each row's last prompt token (the position that predicts the answer)."""
        return self.continuation_start - 1

    def to(self, device) -> "Batch":
        return replace(self, **{name: getattr(self, name).to(device) for name in
                                ("input_ids", "attention_mask", "roles", "continuation_start")})

    def model_inputs(self, model) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` and, where the model takes them, positions counted from the mask.

        Positions from the mask keep left padding from shifting absolute position embeddings (GPT-2).
        """
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if accepts(model, "position_ids"):
            inputs["position_ids"] = (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return inputs


def collate(items: Sequence[EncodedPrompt], pad_id: int, side: Literal["left", "right"] = "left") -> Batch:
    """Pad encoded prompts into one batch, on the left (generation) or right."""
    if side not in ("left", "right"):
        raise NeurospecError(f"padding side must be 'left' or 'right', not {side!r}")
    if not items:
        raise NeurospecError("cannot collate an empty list of prompts")
    width = max(len(item) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    roles = torch.zeros((len(items), width), dtype=torch.long)
    starts = torch.empty(len(items), dtype=torch.long)
    for row, item in enumerate(items):
        offset = width - len(item) if side == "left" else 0
        ids[row, offset:offset + len(item)] = torch.tensor(item.input_ids, dtype=torch.long)
        roles[row, offset:offset + len(item)] = torch.tensor([ROLES.index(r) for r in item.roles])
        starts[row] = offset + item.prompt_length
    return Batch(ids, (roles > 0).long(), roles, starts, side)

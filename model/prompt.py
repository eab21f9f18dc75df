"""From parsed chat messages to the model's token ids, with each token's importance level.

The chat template renders the messages into one string. To know where each message's clean text
landed in it, the template is rendered once more with a unique sentinel in place of each content;
the sentinels' positions give the content offsets, and the result is checked against the real
rendering. Spans then map onto the model's own tokens through the tokenizer's offset mapping: a
token takes the highest level of any character it covers (a span starting mid-token marks that
token), and tokens the template inserted (role headers, ``<|im_end|>``) have no level.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from salience.markup import LEVELS, Conversation, Level
from salience.markup.errors import SalienceError

NO_LEVEL = -1  # a token outside every span: template tokens and unmarked text
LEVEL_INDEX = {level: i for i, level in enumerate(LEVELS)}  # hard=0, high=1, normal=2, low=3


class TemplateError(SalienceError):
    code = "template-error"
    title = "Chat template error"


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: token ids, the level index of each token (or NO_LEVEL), and text."""

    text: str
    input_ids: torch.Tensor  # (T,) int64
    levels: torch.Tensor  # (T,) int64: an index into LEVELS, or NO_LEVEL
    message_ranges: list[tuple[int, int]]  # each message's content, in characters of text

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def level_one_hot(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(T, len(LEVELS)): 1 where a token has that level."""
        out = torch.zeros(len(self), len(LEVELS), dtype=dtype)
        marked = self.levels >= 0
        out[marked.nonzero().squeeze(-1), self.levels[marked]] = 1
        return out

    def marked(self, *levels: Level) -> torch.Tensor:
        """(T,) bool: tokens of any of ``levels`` (default: hard and high)."""
        wanted = levels or (Level.HARD, Level.HIGH)
        mask = torch.zeros(len(self), dtype=torch.bool)
        for level in wanted:
            mask |= self.levels == LEVEL_INDEX[level]
        return mask


def render_messages(
    tokenizer: PreTrainedTokenizerBase,
    conversation: Conversation,
    add_generation_prompt: bool = True,
) -> tuple[str, list[tuple[int, int]]]:
    """The chat-template text, and where each message's clean text sits in it."""
    messages = [{"role": m.role, "content": m.document.text} for m in conversation.messages]
    text = _apply(tokenizer, messages, add_generation_prompt)
    sentinels = [f"\x00{uuid.uuid4().hex}\x00" for _ in messages]
    marked_text = _apply(
        tokenizer,
        [{"role": m["role"], "content": s} for m, s in zip(messages, sentinels, strict=True)],
        add_generation_prompt,
    )
    ranges: list[tuple[int, int]] = []
    out: list[str] = []
    pos = 0
    shift = 0
    for message, sentinel in zip(messages, sentinels, strict=True):
        at = marked_text.find(sentinel, pos)
        if at < 0:
            raise TemplateError("the chat template dropped or changed a message's content")
        out.append(marked_text[pos:at])
        start = at + shift
        ranges.append((start, start + len(message["content"])))
        out.append(message["content"])
        shift += len(message["content"]) - len(sentinel)
        pos = at + len(sentinel)
    out.append(marked_text[pos:])
    if "".join(out) != text:
        raise TemplateError("the chat template transforms message content; spans cannot be placed")
    return text, ranges


def _apply(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    assert isinstance(text, str)
    return text


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    conversation: Conversation,
    add_generation_prompt: bool = True,
) -> Prompt:
    text, ranges = render_messages(tokenizer, conversation, add_generation_prompt)
    ids: list[int] = []
    levels: list[int] = []
    rank = torch.tensor([level.rank for level in LEVELS])  # hard=3 … low=0
    pos = 0
    for message, (start, end) in zip(conversation.messages, ranges, strict=True):
        # Template text: its special tokens (<|im_start|>, …) are meant.
        template_ids = _encode(tokenizer, text[pos:start], split_special=False)[0]
        ids += template_ids
        levels += [NO_LEVEL] * len(template_ids)
        # Message content: a special-token string typed into it is ordinary text, always.
        content_ids, offsets = _encode(tokenizer, text[start:end], split_special=True)
        char_levels = torch.full((end - start,), NO_LEVEL, dtype=torch.int64)
        for span in message.document.spans:
            char_levels[span.start : span.end] = LEVEL_INDEX[span.level]
        for a, b in offsets:
            chunk = char_levels[a:b]
            chunk = chunk[chunk >= 0]
            # a token takes the most important level of any character it covers
            levels.append(int(chunk[torch.argmax(rank[chunk])]) if len(chunk) else NO_LEVEL)
        ids += content_ids
        pos = end
    tail_ids = _encode(tokenizer, text[pos:], split_special=False)[0]
    ids += tail_ids
    levels += [NO_LEVEL] * len(tail_ids)
    return Prompt(
        text,
        torch.tensor(ids, dtype=torch.int64),
        torch.tensor(levels, dtype=torch.int64),
        ranges,
    )


def _encode(
    tokenizer: PreTrainedTokenizerBase, text: str, split_special: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    if not text:
        return [], []
    encoded = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        split_special_tokens=split_special,
    )
    return list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]

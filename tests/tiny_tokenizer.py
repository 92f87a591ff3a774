"""A byte-level BPE tokenizer trained offline on a few sentences, with chat templates written here.

    from tiny_tokenizer import tiny_tokenizer, CHAT_TEMPLATE, NO_SYSTEM_TEMPLATE
    tok = tiny_tokenizer()                      # cached; copy it before changing its settings
    model = family("llama").build(vocab_size=len(tok))
"""

from __future__ import annotations

import copy
import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

CORPUS = [
    "The cat sat on the mat because it was warm.",
    "Answer: A", "Answer: B", "Answer: C", "Answer: D", "A B C D",
    "Which city is the capital of France? Paris is the capital of France.",
    "The trophy does not fit into the suitcase because it is too big.",
    "Le chat dort sur le tapis parce qu'il fait chaud.",
    "Die Katze schläft auf der Matte, weil es warm ist.",
    "Кошка спит на коврике, потому что тепло.",
    "猫はマットの上で寝ている。",
    "The man broke his toe because he dropped a hammer on his foot.",
    "She went to the market, and she bought some bread and cheese.",
] * 20

# {"answer_choice":"  + letters, so that the culture method's prefill is realistic
CORPUS += ['{"answer_choice":"A"}', '{"answer_choice":"B"}', '{"answer_choice":"C"}', '{"answer_choice":"D"}'] * 20

CHAT_TEMPLATE = (
    "<bos>{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}<|end|>\n"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>\n"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}"
)

# like Gemma-2's: a system turn is refused
NO_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    + CHAT_TEMPLATE
)


@functools.lru_cache(maxsize=None)
def _trained() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(CORPUS, trainer)
    from tokenizers.processors import TemplateProcessing

    core.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", core.token_to_id("<bos>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  additional_special_tokens=SPECIAL[3:])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh copy of the cached tokenizer (tests may change its pad token or template)."""
    return copy.deepcopy(_trained())

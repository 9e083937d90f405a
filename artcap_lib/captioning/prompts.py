"""The captioning prompt: what text a captioner sends with an image, in each model family's conversation format.

Chat models get one user turn, the image first and then the instruction, rendered by the processor's own chat
template (the paper: "Caption this image" through llava-hf's template, answer = the text after "ASSISTANT:").
Families without a chat template (PaliGemma's task prefixes, BLIP-2) get the prompt as written.
`docs/CAPTIONERS.md` lists the prompt and answer rule of each family tested here.
`LLAVA_CHAT_TEMPLATE` is that LLaVA-1.5 conversation format as a Jinja template, for stand-in processors built
here (pocket and random models) so that they render exactly what llava-hf's processor renders.
"""
from __future__ import annotations

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def has_chat_template(processor) -> bool:
    tokenizer = getattr(processor, "tokenizer", processor)
    return bool(getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None))


def chat_prompt(processor, prompt: str) -> str:
    """One user turn, the image first and then the text, rendered by the processor's chat template. A family
    without one (PaliGemma, BLIP-2) takes the prompt as it is: its processor places the image tokens (and BOS)
    itself, and the prompt is a task prefix ("caption en") rather than a conversation."""
    if not has_chat_template(processor):
        # PaliGemma wants its image token(s) at the very start of the text; the processor expands them
        image_token = getattr(processor, "image_token", None)
        return f"{image_token}{prompt}" if image_token and not prompt.startswith(image_token) else prompt
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(conversation, add_generation_prompt=True)

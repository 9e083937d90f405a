"""What a captioner sends with each image: the model inputs, built by the processor's own rules for every family.

Chat models get one user turn per image, the image as a message part and then the instruction, and the processor
renders and tokenises it in one call (`apply_chat_template(..., tokenize=True)`, what every model card does): the
template's own BOS is kept and the tokenizer adds none (rendering to text and tokenising again gave Gemma 3 and
Llama 3.2 Vision two), and each prompt gets its own list of images (a flat list reads as all images for one prompt
on Gemma 3 and Mllama). The paper's LLaVA-1.5 call (render, then `processor(images=..., text=...)`) gives the same
ids: llava-hf's template writes no BOS, so the tokenizer adds it either way.

Families without a chat template take the prompt as written and the processor does the rest: PaliGemma's
processor puts the image tokens and BOS before its task prefix ("caption en"), BLIP-2's puts its query tokens
before the text (a prefix such as "a painting of", or "" for a plain caption), Florence-2's turns a task token
("<CAPTION>") into its question and adds its image token. Where the processor declares the prompts it accepts
(Florence-2's task tokens), any other prompt is an error that names them. `docs/CAPTIONERS.md` lists each family's
profile entry.

`LLAVA_CHAT_TEMPLATE` is the LLaVA-1.5 conversation format as a Jinja template, for stand-in processors built here
(pocket and random models) so that they render exactly what llava-hf's processor renders.
"""
from __future__ import annotations

from typing import Sequence

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


class PromptError(ValueError):
    """A prompt the checkpoint's processor cannot caption with; the message says which setting it needs."""


def has_chat_template(processor) -> bool:
    tokenizer = getattr(processor, "tokenizer", processor)
    return bool(getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None))


def conversation(prompt: str, image=None) -> list[dict]:
    """One user turn: the image, then the instruction (the authors' order)."""
    image_part = {"type": "image"} if image is None else {"type": "image", "image": image}
    return [{"role": "user", "content": [image_part, {"type": "text", "text": prompt}]}]


def task_prompts(processor) -> list[str]:
    """The task tokens a task-token processor accepts as the whole prompt (Florence-2's), else []."""
    return sorted(getattr(processor, "task_prompts_without_inputs", None) or {})


def check_prompt(processor, prompt: str) -> None:
    """Refuse a prompt the processor would reject or misread, saying what to set instead."""
    tasks = task_prompts(processor)
    if tasks and not has_chat_template(processor) and prompt not in tasks:
        # the captioning tasks: those answered with plain text whose token says CAPTION
        kinds = getattr(processor, "tasks_answer_post_processing_type", {})
        captions = [t for t in tasks if "CAPTION" in t and kinds.get(t, "pure_text") == "pure_text"] or tasks
        raise PromptError(f"{type(processor).__name__} takes a task token as the whole prompt, not {prompt!r}: set "
                          f"captioning.prompt to one of {', '.join(captions)} (all: {', '.join(tasks)})")


def chat_prompt(processor, prompt: str) -> str:
    """The prompt as text, for display and for training the pocket models: one user turn rendered by the
    processor's chat template, or the prompt as written where there is none (the processor adds its image and
    special tokens when it tokenises)."""
    if not has_chat_template(processor):
        return prompt
    return processor.apply_chat_template(conversation(prompt), add_generation_prompt=True)


def model_inputs(processor, images: Sequence, prompts: Sequence[str]):
    """The processor's tensors for captioning `images[i]` with `prompts[i]`, padded into one batch (on the side the
    tokenizer pads: left for decoder-only captioners, `Captioner` sets it)."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    for prompt in set(prompts):
        check_prompt(processor, prompt)
    if has_chat_template(processor):
        inputs = processor.apply_chat_template(
            [conversation(p, image) for image, p in zip(images, prompts)], add_generation_prompt=True,
            tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={"padding": True})
    else:
        inputs = processor(images=[[image] for image in images], text=list(prompts), return_tensors="pt",
                           padding=True)
    inputs.pop("labels", None)          # PaliGemma's processor may add training labels: not a generation input
    return inputs

"""Loading a captioner's processor, including those that transformers cannot build without torchvision.

Qwen2-VL, Qwen2.5-VL and SmolVLM processors carry a video processor. In transformers 5.x without torchvision the
video-processor classes are not exported, and `ProcessorMixin`'s class check on that argument fails even when
no video is ever passed (`VIDEO_PROCESSOR_MAPPING has no attribute '_extra_content'`). torchvision is not an
option for this project: PyPI's wheel for torch 2.13 links libtorch_cuda.so and drags the CUDA stack in.

Captioning never passes videos, so `load_processor` builds such a processor without its video part: the same
processor class (same image-token expansion, same chat template, same `__call__`), its image processor and
tokenizer loaded from the checkpoint as `AutoProcessor` would, and `video_processor=None`, which only the class
check has to accept (`image_only`). Any other failure is raised as it is.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path


def load_processor(name_or_path: str | Path):
    """`AutoProcessor.from_pretrained`, or the image-only form of the same processor where only its video
    processor cannot be built (no torchvision)."""
    from transformers import AutoProcessor
    try:
        return AutoProcessor.from_pretrained(str(name_or_path))
    except (AttributeError, ImportError, ValueError) as err:
        if not _is_missing_video_support(err):
            raise
        return image_only_processor(name_or_path)


def _is_missing_video_support(err: Exception) -> bool:
    text = str(err)
    return "VIDEO_PROCESSOR_MAPPING" in text or "torchvision" in text.lower() or "VideoProcessor" in text


def _processor_class_name(directory: Path) -> str:
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get("processor_class")
            if value:
                return value
    raise ValueError(f"{directory}: no processor_class in its processor, preprocessor or tokenizer config")


def _chat_template(directory: Path) -> str | None:
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    legacy = directory / "chat_template.json"
    if legacy.is_file():
        return json.loads(legacy.read_text(encoding="utf-8"))["chat_template"]
    return None         # the tokenizer's own template, if it has one, is used then


@lru_cache(maxsize=None)
def image_only(processor_class: type) -> type:
    """`processor_class` accepting video_processor=None (captioning never passes videos)."""
    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return None
        return processor_class.check_argument_for_proper_class(self, argument_name, argument)
    return type(processor_class.__name__, (processor_class,),
                {"check_argument_for_proper_class": check_argument_for_proper_class,
                 "__doc__": f"{processor_class.__name__} without its video processor (no torchvision)."})


def image_only_processor(name_or_path: str | Path):
    """The checkpoint's processor class, built from its image processor, tokenizer and chat template."""
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer
    directory = Path(name_or_path)
    if not directory.is_dir():                    # a hub id: its files are in the local cache once downloaded
        from huggingface_hub import snapshot_download
        directory = Path(snapshot_download(str(name_or_path)))
    cls = getattr(transformers, _processor_class_name(directory))
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    template = _chat_template(directory) or getattr(tokenizer, "chat_template", None)
    return image_only(cls)(image_processor=AutoImageProcessor.from_pretrained(str(directory)), tokenizer=tokenizer,
                           video_processor=None, chat_template=template)

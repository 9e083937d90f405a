"""Loading a captioner's processor, including those that transformers cannot build without torchvision.

Qwen2-VL, Qwen2.5-VL, SmolVLM, LLaVA-OneVision and InternVL processors carry a video processor. In transformers 5.x
without torchvision the video-processor classes are not exported, and `AutoProcessor` fails on that part even when
no video is ever passed (`VIDEO_PROCESSOR_MAPPING has no attribute '_extra_content'`). torchvision is not an option
for this project: PyPI's wheel for torch 2.13 links libtorch_cuda.so and drags the CUDA stack in.

Captioning never passes videos, so `load_processor` then loads the same processor class through that class's own
`from_pretrained` with the video part marked as given (`image_only`): every file the class reads is read as
`AutoProcessor` would read it (`processor_config.json` with its own settings such as LLaVA-OneVision's
`num_image_tokens` and `vision_feature_select_strategy`, the image processor's `preprocessor_config.json`, the
tokenizer files, `chat_template.json` / `chat_template.jinja`), and only the video processor is None. Building the
processor from its parts by hand, as an earlier version did, silently dropped `processor_config.json`.
Any other failure is raised as it is.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_NO_VIDEO = object()      # stands for the video processor while the class resolves its other parts


def load_processor(name_or_path: str | Path):
    """`AutoProcessor.from_pretrained`, or the image-only form of the same processor where only its video
    processor cannot be built (no torchvision)."""
    from transformers import AutoProcessor
    try:
        return AutoProcessor.from_pretrained(str(name_or_path))
    except (AttributeError, ImportError, ValueError, TypeError) as err:
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


@lru_cache(maxsize=None)
def image_only(processor_class: type) -> type:
    """`processor_class` accepting video_processor=None, and loading from a checkpoint without building its video
    processor (captioning never passes videos). A class without a video part is returned unchanged."""
    if "video_processor" not in processor_class.get_attributes():
        return processor_class

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return None
        return processor_class.check_argument_for_proper_class(self, argument_name, argument)

    @classmethod
    def _resolve_subprocessors(cls, pretrained_model_name_or_path, processor_dict, **kwargs):
        # a sub-processor passed in is not loaded: hand the class a stand-in for the video part, then drop it
        processor_dict, kwargs = super(subclass, cls)._resolve_subprocessors(
            pretrained_model_name_or_path, processor_dict, **{**kwargs, "video_processor": _NO_VIDEO})
        processor_dict["video_processor"] = None
        return processor_dict, kwargs

    subclass = type(processor_class.__name__, (processor_class,),
                    {"check_argument_for_proper_class": check_argument_for_proper_class,
                     "_resolve_subprocessors": _resolve_subprocessors,
                     "__module__": processor_class.__module__,
                     "__doc__": f"{processor_class.__name__} without its video processor (no torchvision)."})
    return subclass


def image_only_processor(name_or_path: str | Path):
    """The checkpoint's processor class, loaded by its own `from_pretrained` without the video processor."""
    import transformers
    directory = Path(name_or_path)
    if not directory.is_dir():                    # a hub id: its files are in the local cache once downloaded
        from huggingface_hub import snapshot_download
        directory = Path(snapshot_download(str(name_or_path)))
    cls = getattr(transformers, _processor_class_name(directory))
    return image_only(cls).from_pretrained(str(directory))

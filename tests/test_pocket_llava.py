"""The demo's pocket LLaVA: its captions, its tokenizer/processor on disk, that it learns, and the accuracy check."""
import pytest
from transformers import AutoProcessor, LlavaForConditionalGeneration

from artcap_lib.data.demo import DemoSizes, generate_collection, main_object_accuracy, visual_sentences
from artcap_lib.captioning.prompts import chat_prompt
from artcap_lib.standins.pocket_llava import PocketSpec, assistant_caption, build_pocket_llava, train_pocket_llava

SCENE = {"background": "sky blue", "objects": [
    {"kind": "circle", "colour": "red", "position": "left", "size": "large"},
    {"kind": "star", "colour": "orange", "position": "right", "size": "small", "height": "top"}]}
TINY = PocketSpec(image_size=32, patch_size=8, vision_hidden=32, vision_layers=1, text_hidden=32, text_layers=1,
                  heads=2, vocab_size=400)


def test_assistant_caption_is_worded_unlike_the_human_sentences():
    import numpy as np
    caption = assistant_caption(SCENE)
    assert caption == "The image features a large red circle on the left of a sky blue background."
    human = " ".join(visual_sentences(SCENE, np.random.default_rng(0)))
    assert "The image features" not in human and caption not in human


def test_main_object_accuracy_reads_the_first_colour_kind_phrase():
    scenes = {"a": SCENE, "b": SCENE, "c": SCENE, "d": SCENE}
    captions = {"a": "The image features a large red circle on the left of a sky blue background.",
                "b": "The image features a large orange star, and a small red circle.",   # leads with the wrong one
                "c": "The image features a large red square on a sky blue background.",   # colour right only
                "d": "A sky blue background."}                                              # names nothing
    result = main_object_accuracy(captions, scenes)
    assert result["n"] == 4 and result["colour_and_kind"] == 0.25
    assert result["colour"] == 0.5 and result["kind"] == 0.25
    assert result["per_image"]["b"]["said"] == "orange star" and result["per_image"]["d"]["said"] is None


def test_processor_round_trips_and_renders_the_llava_prompt(tmp_path):
    model, processor = build_pocket_llava([assistant_caption(SCENE)] * 4, TINY)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(LlavaForConditionalGeneration.from_pretrained(tmp_path)) is LlavaForConditionalGeneration
    assert chat_prompt(loaded, "Caption this image") == "USER: <image>\nCaption this image ASSISTANT:"
    from PIL import Image
    ids = loaded(images=[Image.new("RGB", (40, 40))], text=[chat_prompt(loaded, "Caption this image")],
                 return_tensors="pt")["input_ids"][0].tolist()
    assert ids[0] == loaded.tokenizer.bos_token_id
    assert ids.count(loaded.tokenizer.convert_tokens_to_ids("<image>")) == (32 // 8) ** 2
    # every caption word is a single token: captions cost few decode steps
    words = assistant_caption(SCENE).rstrip(".").split()
    assert len(loaded.tokenizer(" " + " ".join(words), add_special_tokens=False)["input_ids"]) == len(words)


def test_training_lowers_the_loss_and_saves_a_loadable_model(tmp_path):
    data = generate_collection(tmp_path / "data", DemoSizes(train=1, val=1, test=1, pretrain=32), image_size=32)
    report = train_pocket_llava(data["pretrain_pool"], data["scenes"], tmp_path / "pocket", steps=30,
                                batch_size=8, lr=3e-3, spec=TINY)
    losses = [entry["loss"] for entry in report["loss"]]
    assert report["pretrain_images"] == 32 and (tmp_path / "pocket" / "training.json").is_file()
    first = train_pocket_llava(data["pretrain_pool"], data["scenes"], tmp_path / "untrained", steps=1,
                               batch_size=8, lr=3e-3, spec=TINY)["loss"][0]["loss"]
    assert losses[-1] < 0.8 * first     # from ln(vocab) ~ 6 towards the caption template
    (tmp_path / "no_scenes.json").write_text("{}")
    with pytest.raises(ValueError, match="no_scenes.json: no scene for pre-training entries 900000"):
        train_pocket_llava(data["pretrain_pool"], tmp_path / "no_scenes.json", tmp_path / "x", steps=1)

"""`artcap bench decode` and `artcap bench caption --engine fast --baseline` on CPU with a pocket-sized random LLaVA."""
import json

import pytest

from artcap_lib.cli import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_decode_and_caption_write_their_figures(tmp_path):
    spec = "llava-1.5-7b@tiny?image_size=28"
    assert main(["bench", "decode", "--model", f"random:{spec}", "--images", "6", "--batch-size", "3",
                 "--max-new-tokens", "4", "--models-dir", str(tmp_path / "models"), "--configs",
                 "generate,generate_static,fast,fast_compiled", "--json", str(tmp_path / "decode.json")]) == 0
    decode = json.loads((tmp_path / "decode.json").read_text())
    assert decode["device"] == "cpu" and decode["prompt_tokens"] > 4
    for name in ("generate_static", "fast"):
        assert decode["configs"][name]["identical"] == 1.0 and decode["configs"][name]["timed_images"] == 3
    assert "skipped" in decode["configs"]["fast_compiled"]
    assert {"ratio_fast_vs_generate", "ratio_fast_vs_generate_static"} <= set(decode)
    assert decode["environment"]["packages"]["torch"]

    assert main(["bench", "caption", "--random-init", spec, "--images", "4", "--batch-size", "2",
                 "--max-new-tokens", "3", "--models-dir", str(tmp_path / "models"), "--engine", "fast",
                 "--baseline", "--json", str(tmp_path / "caption.json")]) == 0
    caption = json.loads((tmp_path / "caption.json").read_text())
    assert caption["engine"] == "fast" and caption["new_tokens_per_image"] == 3
    assert caption["decoders"]["configs"]["fast"]["token_agreement"] == 1.0    # --baseline: decoders in the same run
    assert "ratio_fast_vs_generate" in caption["decoders"] and caption["baseline_images_per_second"] > 0
    # the random model was materialised once and reused by the second command
    assert [p.name for p in (tmp_path / "models" / "random").iterdir()] == ["llava-1.5-7b_tiny_image_size_28"]


def test_bench_decode_rejects_unknown_configs(tmp_path):
    with pytest.raises(ValueError, match="unknown decoder configuration"):
        main(["bench", "decode", "--configs", "beam", "--models-dir", str(tmp_path), "--images", "1"])

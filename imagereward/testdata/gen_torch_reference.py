#!/usr/bin/python3
"""A PyTorch reference for package imagereward: a small ImageReward written
with torch.save in the original layout, and the scores PyTorch computes for
it, end to end from image files and prompts.

Run with Debian's Python, torch, torchvision 0.14 and Pillow 9.4, from the
repository root:

    /usr/bin/python3 imagereward/testdata/gen_torch_reference.py

It writes into imagereward/testdata/torch/:

  ImageReward.pt    state dict with the keys of ImageReward.state_dict()
                    (blip.visual_encoder.*, blip.text_encoder.* with the
                    position_ids buffer, blip.vision_proj/text_proj, mlp.layers.*),
                    seeded random weights, small sizes
  med_config.json, vision_config.json, vocab.txt (a few words)
  reference.json    prompts, images, input ids, and the scores

The forward pass is transcribed from THUDM/ImageReward: ImageReward.score,
models/BLIP/vit.py (VisionTransformer: pre-norm blocks, LayerNorm eps 1e-6,
nn.GELU) and models/BLIP/med.py in "multimodal" mode (BertEmbeddings without
token types, post-norm layers with self-attention, cross-attention to all image
tokens and the feed-forward block, extended mask (1 - mask) * -10000), in
float32 as the original runs on CPU. Images go through the original
transform (Resize(n, BICUBIC), CenterCrop(n), convert RGB, ToTensor,
Normalize with CLIP's mean/std); ids through the tokenizer transcription of
preprocess/text/testdata/wordpiece/gen_reference.py.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "torch")
sys.path.insert(0, os.path.join(ROOT, "preprocess", "testdata", "wordpiece"))
from gen_reference import BLIPBertTokenizer  # noqa: E402

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
VIS = dict(image_size=64, patch_size=16, width=48, depth=2, num_heads=3, mlp_ratio=4.0, layer_norm_eps=1e-6)
MED = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
           max_position_embeddings=40, layer_norm_eps=1e-12, hidden_act="gelu", vocab_size=0,
           add_cross_attention=True, encoder_width=768, model_type="bert", type_vocab_size=2, pad_token_id=0)
WORDS = ["a", "red", "apple", "on", "the", "wooden", "table", "cat", "dog", "photo", "of", "in", "hat",
         "light", "##house", "at", "dusk", ",", ".", "##s", "high", "##ly", "detailed", "4", "##k"]
PROMPTS = ["A red apple on the wooden table", "a photo of a cat in a hat, highly detailed 4k",
           ("a lighthouse at dusk, " * 8).strip()]
IMAGES = ["rgba8_100x80.png", "p8_310x215.gif", "rgb8_227x224.png", "gray_310x230.bmp"]


def params(vocab_size):
    D, P, S = VIS["width"], VIS["patch_size"], VIS["image_size"]
    M = int(D * VIS["mlp_ratio"])
    T = (S // P) ** 2 + 1
    H, I, E = MED["hidden_size"], MED["intermediate_size"], VIS["width"]
    v, t = "blip.visual_encoder.", "blip.text_encoder."
    ps = [(v + "cls_token", (1, 1, D)), (v + "pos_embed", (1, T, D)),
          (v + "patch_embed.proj.weight", (D, 3, P, P)), (v + "patch_embed.proj.bias", (D,))]
    for l in range(VIS["depth"]):
        b = f"{v}blocks.{l}."
        ps += [(b + "norm1.weight", (D,)), (b + "norm1.bias", (D,)), (b + "attn.qkv.weight", (3 * D, D)),
               (b + "attn.qkv.bias", (3 * D,)), (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)),
               (b + "norm2.weight", (D,)), (b + "norm2.bias", (D,)), (b + "mlp.fc1.weight", (M, D)),
               (b + "mlp.fc1.bias", (M,)), (b + "mlp.fc2.weight", (D, M)), (b + "mlp.fc2.bias", (D,))]
    ps += [(v + "norm.weight", (D,)), (v + "norm.bias", (D,))]
    ps += [(t + "embeddings.position_ids", None),
           (t + "embeddings.word_embeddings.weight", (vocab_size, H)),
           (t + "embeddings.position_embeddings.weight", (MED["max_position_embeddings"], H)),
           (t + "embeddings.LayerNorm.weight", (H,)), (t + "embeddings.LayerNorm.bias", (H,))]
    for l in range(MED["num_hidden_layers"]):
        b = f"{t}encoder.layer.{l}."
        for a, kv in (("attention.", H), ("crossattention.", E)):
            ps += [(b + a + "self.query.weight", (H, H)), (b + a + "self.query.bias", (H,)),
                   (b + a + "self.key.weight", (H, kv)), (b + a + "self.key.bias", (H,)),
                   (b + a + "self.value.weight", (H, kv)), (b + a + "self.value.bias", (H,)),
                   (b + a + "output.dense.weight", (H, H)), (b + a + "output.dense.bias", (H,)),
                   (b + a + "output.LayerNorm.weight", (H,)), (b + a + "output.LayerNorm.bias", (H,))]
        ps += [(b + "intermediate.dense.weight", (I, H)), (b + "intermediate.dense.bias", (I,)),
               (b + "output.dense.weight", (H, I)), (b + "output.dense.bias", (H,)),
               (b + "output.LayerNorm.weight", (H,)), (b + "output.LayerNorm.bias", (H,))]
    ps += [("blip.vision_proj.weight", (256, D)), ("blip.vision_proj.bias", (256,)),
           ("blip.text_proj.weight", (256, H)), ("blip.text_proj.bias", (256,))]
    inp = H
    for i, out in zip((0, 2, 4, 6, 7), (1024, 128, 64, 16, 1)):
        ps += [(f"mlp.layers.{i}.weight", (out, inp)), (f"mlp.layers.{i}.bias", (out,))]
        inp = out
    return ps


def random_state(vocab_size):
    g = torch.Generator().manual_seed(2025)
    sd = {}
    for name, shape in params(vocab_size):
        if shape is None:
            sd[name] = torch.arange(MED["max_position_embeddings"]).expand((1, -1)).clone()
            continue
        if "norm" in name.lower() and name.endswith(".weight"):
            x = 1 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(".bias") or "embed" in name or "cls_token" in name:
            x = 0.3 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            x = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        sd[name] = x.float().contiguous()
    return sd


def vit(sd, x):
    p = "blip.visual_encoder."
    D, Hh = VIS["width"], VIS["num_heads"]
    eps = VIS["layer_norm_eps"]
    x = F.conv2d(x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=VIS["patch_size"])
    x = x.flatten(2).transpose(1, 2)
    B, N = x.shape[0], x.shape[1] + 1
    x = torch.cat((sd[p + "cls_token"].expand(B, -1, -1), x), dim=1)
    x = x + sd[p + "pos_embed"][:, :N, :]
    for l in range(VIS["depth"]):
        b = f"{p}blocks.{l}."
        h = F.layer_norm(x, (D,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).reshape(B, N, 3, Hh, D // Hh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * (D // Hh) ** -0.5).softmax(dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, N, D)
        x = x + F.linear(o, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])), sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        x = x + h
    return F.layer_norm(x, (D,), sd[p + "norm.weight"], sd[p + "norm.bias"], eps)


def attention(sd, pre, x, kv, heads, ext):
    B, L, H = x.shape
    hd = H // heads

    def split(t):
        return t.view(t.shape[0], t.shape[1], heads, hd).permute(0, 2, 1, 3)

    q = split(F.linear(x, sd[pre + "self.query.weight"], sd[pre + "self.query.bias"]))
    k = split(F.linear(kv, sd[pre + "self.key.weight"], sd[pre + "self.key.bias"]))
    v = split(F.linear(kv, sd[pre + "self.value.weight"], sd[pre + "self.value.bias"]))
    s = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if ext is not None:
        s = s + ext
    c = (s.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, L, H)
    c = F.linear(c, sd[pre + "output.dense.weight"], sd[pre + "output.dense.bias"])
    return F.layer_norm(c + x, (H,), sd[pre + "output.LayerNorm.weight"], sd[pre + "output.LayerNorm.bias"], MED["layer_norm_eps"])


def bert(sd, ids, mask, enc):
    t = "blip.text_encoder."
    H, heads, eps = MED["hidden_size"], MED["num_attention_heads"], MED["layer_norm_eps"]
    L = ids.shape[1]
    pos_ids = sd[t + "embeddings.position_ids"][:, :L]
    x = F.embedding(ids, sd[t + "embeddings.word_embeddings.weight"]) + F.embedding(pos_ids, sd[t + "embeddings.position_embeddings.weight"])
    x = F.layer_norm(x, (H,), sd[t + "embeddings.LayerNorm.weight"], sd[t + "embeddings.LayerNorm.bias"], eps)
    ext = (1.0 - mask[:, None, None, :].float()) * -10000.0
    enc_ext = (1.0 - torch.ones(enc.shape[:2])[:, None, None, :]) * -10000.0
    for l in range(MED["num_hidden_layers"]):
        b = f"{t}encoder.layer.{l}."
        x = attention(sd, b + "attention.", x, x, heads, ext)
        x = attention(sd, b + "crossattention.", x, enc, heads, enc_ext)
        f = F.gelu(F.linear(x, sd[b + "intermediate.dense.weight"], sd[b + "intermediate.dense.bias"]))
        f = F.linear(f, sd[b + "output.dense.weight"], sd[b + "output.dense.bias"])
        x = F.layer_norm(f + x, (H,), sd[b + "output.LayerNorm.weight"], sd[b + "output.LayerNorm.bias"], eps)
    return x


def head(sd, h):
    for i in (0, 2, 4, 6, 7):  # the dropouts between them are identity in eval()
        h = F.linear(h, sd[f"mlp.layers.{i}.weight"], sd[f"mlp.layers.{i}.bias"])
    return (h - 0.16717362830052426) / 1.0333394966054072


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    with open(os.path.join(OUT, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tok = BLIPBertTokenizer(os.path.join(OUT, "vocab.txt"))
    vocab_size = len(vocab) + 2  # with [DEC] and [ENC], as BLIP resizes the embedding
    MED["vocab_size"] = vocab_size
    with open(os.path.join(OUT, "med_config.json"), "w") as f:
        json.dump(MED, f, indent=2)
    with open(os.path.join(OUT, "vision_config.json"), "w") as f:
        json.dump(VIS, f, indent=2)
    sd = random_state(vocab_size)
    torch.save(sd, os.path.join(OUT, "ImageReward.pt"))

    n = VIS["image_size"]
    tf = Compose([Resize(n, interpolation=InterpolationMode.BICUBIC), CenterCrop(n), lambda im: im.convert("RGB"),
                  ToTensor(), Normalize(MEAN, STD)])
    src = os.path.join(ROOT, "preprocess", "testdata", "torchvision", "src")
    pixels = torch.stack([tf(Image.open(os.path.join(src, name))) for name in IMAGES])
    with torch.no_grad():
        tokens = vit(sd, pixels)
        cases = []
        for p in PROMPTS:
            ids, mask = tok(p, max_length=35)
            ids_t = torch.tensor([ids] * len(IMAGES))
            mask_t = torch.tensor([mask] * len(IMAGES))
            h = bert(sd, ids_t, mask_t, tokens)
            scores = head(sd, h[:, 0, :]).reshape(-1)
            cases.append({"prompt": p, "ids": ids, "mask": mask, "scores": [float(s) for s in scores]})
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"source": f"torch {torch.__version__}, float32", "images": IMAGES, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

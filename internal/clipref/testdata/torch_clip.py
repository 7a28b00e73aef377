#!/usr/bin/python3
"""Float64 PyTorch transcription of transformers 4.27's CLIPModel
get_image_features / get_text_features and of the HP head, used once at
development time to produce torch_features.json for clipref's Go test.

    cd internal/clipref
    CLIPREF_WRITE=/tmp/clipref go test -run TestWriteTorchInputs .
    /usr/bin/python3 testdata/torch_clip.py /tmp/clipref testdata/torch_features.json

The input directory holds index.json (one entry per case: config, seeds, token
ids, and for each of weights / head / pixels a raw little-endian float32 file
with a tensor index). Only torch and the standard library are needed; the
module structure follows transformers' modeling_clip.py (4.27) line by line,
with torch.nn.functional doing the arithmetic.
"""
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)
DT = torch.float64


def load_tensors(dirname, entry):
    raw = open(os.path.join(dirname, entry["file"]), "rb").read()
    flat = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    out = {}
    for t in entry["tensors"]:
        n = math.prod(t["shape"])
        out[t["name"]] = flat[t["offset"]:t["offset"] + n].reshape(t["shape"]).to(DT)
    return out, hashlib.sha256(raw).hexdigest()


ACT = {
    "gelu": lambda x: F.gelu(x),  # erf form
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0)))),
}


def linear(sd, name, x, bias=True):
    return F.linear(x, sd[name + ".weight"], sd[name + ".bias"] if bias else None)


def layer_norm(sd, name, x, eps):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps)


def clip_attention(sd, p, x, heads, mask):
    # CLIPAttention.forward, transformers 4.27
    bsz, tgt_len, embed_dim = x.shape
    head_dim = embed_dim // heads
    scale = head_dim ** -0.5

    def shape(t):
        return t.view(bsz, tgt_len, heads, head_dim).transpose(1, 2).contiguous()

    q = linear(sd, p + "q_proj", x) * scale
    k = shape(linear(sd, p + "k_proj", x))
    v = shape(linear(sd, p + "v_proj", x))
    proj_shape = (bsz * heads, -1, head_dim)
    q = shape(q).view(*proj_shape)
    k = k.view(*proj_shape)
    v = v.view(*proj_shape)
    w = torch.bmm(q, k.transpose(1, 2))
    if mask is not None:
        w = w.view(bsz, heads, tgt_len, tgt_len) + mask
        w = w.view(bsz * heads, tgt_len, tgt_len)
    w = F.softmax(w, dim=-1)
    o = torch.bmm(w, v)
    o = o.view(bsz, heads, tgt_len, head_dim).transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
    return linear(sd, p + "out_proj", o)


def clip_encoder(sd, tower, tc, x, mask):
    act = ACT[tc["hidden_act"]]
    eps = tc["layer_norm_eps"]
    for i in range(tc["num_hidden_layers"]):
        p = f"{tower}.encoder.layers.{i}."
        residual = x
        x = layer_norm(sd, p + "layer_norm1", x, eps)
        x = clip_attention(sd, p + "self_attn.", x, tc["num_attention_heads"], mask)
        x = residual + x
        residual = x
        x = layer_norm(sd, p + "layer_norm2", x, eps)
        x = linear(sd, p + "mlp.fc2", act(linear(sd, p + "mlp.fc1", x)))
        x = residual + x
    return x


def image_features(sd, cfg, pixels):
    vc = cfg["vision_config"]
    eps = vc["layer_norm_eps"]
    # CLIPVisionEmbeddings
    b = pixels.shape[0]
    patch = F.conv2d(pixels, sd["vision_model.embeddings.patch_embedding.weight"], stride=vc["patch_size"])
    patch = patch.flatten(2).transpose(1, 2)
    cls = sd["vision_model.embeddings.class_embedding"].expand(b, 1, -1)
    x = torch.cat([cls, patch], dim=1) + sd["vision_model.embeddings.position_embedding.weight"][None]
    # CLIPVisionTransformer
    x = layer_norm(sd, "vision_model.pre_layrnorm", x, eps)
    x = clip_encoder(sd, "vision_model", vc, x, None)
    pooled = layer_norm(sd, "vision_model.post_layernorm", x[:, 0, :], eps)
    return F.linear(pooled, sd["visual_projection.weight"])


def text_features(sd, cfg, input_ids):
    tc = cfg["text_config"]
    bsz, seq_len = input_ids.shape
    # CLIPTextEmbeddings
    x = F.embedding(input_ids, sd["text_model.embeddings.token_embedding.weight"])
    x = x + sd["text_model.embeddings.position_embedding.weight"][:seq_len][None]
    # _build_causal_attention_mask (4.27): fill with finfo.min, triu_(1)
    mask = torch.empty(bsz, seq_len, seq_len, dtype=DT)
    mask.fill_(torch.finfo(DT).min)
    mask.triu_(1)
    mask = mask.unsqueeze(1)
    x = clip_encoder(sd, "text_model", tc, x, mask)
    x = layer_norm(sd, "text_model.final_layer_norm", x, tc["layer_norm_eps"])
    pooled = x[torch.arange(bsz), input_ids.to(torch.int).argmax(dim=-1)]
    return F.linear(pooled, sd["text_projection.weight"])


def hp_head(head, emb):
    x = emb
    for i in (0, 2, 4, 6, 7):
        x = linear(head, f"layers.{i}", x)
    return x[:, 0]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    index = json.load(open(os.path.join(src, "index.json")))
    out_cases = []
    for case in index["cases"]:
        cfg = case["config"]
        sd, w_sha = load_tensors(src, case["weights"])
        head, h_sha = load_tensors(src, case["head"])
        px, p_sha = load_tensors(src, case["pixels"])
        pixels = px["pixel_values"]
        ids = torch.tensor(case["input_ids"], dtype=torch.int64)
        img = image_features(sd, cfg, pixels)
        txt = text_features(sd, cfg, ids)
        hp = hp_head(head, img)
        out = {k: case[k] for k in ("name", "config", "seed", "std", "head_seed", "pixel_seed", "num_images", "input_ids")}
        out.update({
            "weights_sha256": w_sha,
            "head_sha256": h_sha,
            "pixels_sha256": p_sha,
            "image_features": img.tolist(),
            "text_features": txt.tolist(),
            "hp_logits": hp.tolist(),
        })
        out_cases.append(out)
    doc = {
        "generated_by": "internal/clipref/testdata/torch_clip.py (float64, torch " + torch.__version__ + ")",
        "cases": out_cases,
    }
    with open(dst, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference ids for the Go CLIP tokenizer tests (writes reference.json here).

This is an independent re-implementation of open_clip's SimpleTokenizer
(src/open_clip/tokenizer.py: basic_clean, whitespace_clean, _clean_lower,
bytes_to_unicode, get_pairs, SimpleTokenizer.bpe/encode/__call__), run with
the real `ftfy` and `regex` packages. It does not use the Go code.

Requirements: CPython 3, the `regex` package (Debian: python3-regex), ftfy
6.x (not packaged in Debian 12; put a python-ftfy checkout, tag v6.3.1, on
PYTHONPATH; it needs python3-wcwidth). The vocabulary is read from
../shared/vocab/bpe_simple_vocab_16e6.txt.gz of the repository root.

    PYTHONPATH=/path/to/python-ftfy python3 preprocess/text/testdata/tokenizer/gen_reference.py

Special tokens: open_clip names them <start_of_text>/<end_of_text> and puts
those names in its token pattern; OpenAI CLIP (and HF tokenizer.json) use
<|startoftext|>/<|endoftext|>. The ids are the same (49406/49407); the names
only matter for prompts that literally contain one of them. The `ids` here
use the OpenAI names, as shared/vocab/tokenizer-reference.json does; where
open_clip's own names give different ids, the case also has
`ids_open_clip_names`.
"""

import gzip
import html
import json
import os
import random
import sys
from functools import lru_cache

import ftfy
import regex as re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
VOCAB = os.path.join(ROOT, "..", "shared", "vocab", "bpe_simple_vocab_16e6.txt.gz")
SHARED_REF = os.path.join(ROOT, "..", "shared", "vocab", "tokenizer-reference.json")


# ---------------------------------------------------------------- open_clip's algorithm

@lru_cache()
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


def basic_clean(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = " ".join(text.split())
    text = text.strip()
    return text


def clean_lower(x):
    return whitespace_clean(basic_clean(x)).lower()


class SimpleTokenizer:
    def __init__(self, bpe_path, special_tokens, context_length=77):
        self.byte_encoder = bytes_to_unicode()
        merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")
        merges = merges[1:49152 - 256 - 2 + 1]
        merges = [tuple(merge.split()) for merge in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        for merge in merges:
            vocab.append("".join(merge))
        vocab.extend(special_tokens)
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {t: t for t in special_tokens}
        special = "|".join(t.replace("|", r"\|") for t in special_tokens)
        self.pat = re.compile(
            special + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            re.IGNORECASE,
        )
        self.sot_token_id = self.encoder[special_tokens[0]]
        self.eot_token_id = self.encoder[special_tokens[1]]
        self.context_length = context_length

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except Exception:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        text = clean_lower(text)
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[bpe_token] for bpe_token in self.bpe(token).split(" "))
        return bpe_tokens

    def __call__(self, text, context_length=None, pad=True):
        context_length = context_length or self.context_length
        tokens = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
        if len(tokens) > context_length:
            tokens = tokens[:context_length]
            tokens[-1] = self.eot_token_id
        if not pad:
            return tokens
        return tokens + [0] * (context_length - len(tokens))


# ---------------------------------------------------------------- cases

HAND = [
    # HTML entities
    ("Tom &amp;amp; Jerry", "double-escaped"),
    ("&amp;amp;amp;amp;lt;b&amp;amp;amp;amp;gt;", "quadruple-escaped (ftfy repeats until nothing changes)"),
    ("fish &amp chips &lt 3 &copy 2024 &notin; &notit; &ampere;", "entities without ';' (Python's html.unescape)"),
    ("&#0; &#1; &#9; &#11; &#13; &#31; &#127; &#128; &#129; &#150; &#157; &#159; &#160;", "numeric refs to controls"),
    ("&#xD800; &#xDFFF; &#x110000; &#99999999999999999999; &#xFFFE; &#x1FFFF; &#xFDD0;", "invalid numeric refs"),
    ("&#65&#x42;&#X43 &#x;&#;&#x1F600; &#128512;", "numeric refs without ';' and astral"),
    ("P&EACUTE;REZ BUNDESSTRA&SZLIG;E &ntilde; &NTILDE; &nTILDE;", "ftfy's all-caps entities"),
    ("a < b &amp; c", "'<' turns ftfy's unescaping off; html.unescape still runs twice"),
    ("line one &amp;amp;\nline <two> &amp;amp;\nline three &amp;amp;", "'<' on line 2 turns ftfy's unescaping off from there on"),
    ("&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; &ampaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;", "long entity names"),
    ("&lt;|startoftext|&gt; hi &lt;|endoftext|&gt;", "escaped special tokens"),
    # quotes, widths, ligatures
    ("\u201cCurly\u201d \u2018quotes\u2019 it\u2019s \u201aodd\u201b \u201elow\u201f \u02bcmodifier", "curly quotes"),
    ("ＦＵＬＬ　ＷＩＤＴＨ　ｔｅｘｔ！ １２３ ｶﾀｶﾅ ﾊﾟ ￦ ￠", "full-width and half-width forms"),
    ("ﬁne ﬂower ﬀ ﬃ ﬄ ﬅ ﬆ Ĳssel ĳs ǅ ǈ ǋ ŉ", "Latin ligatures"),
    # whitespace
    ("a\u00a0b\u2028c\u2029d\u3000e\u1680f\u2000g\u200ah\u202fi\u205fj\x85k\x1cl\x1dm\x1en\x1fo\x0bp\x0cq\rr\r\ns", "Unicode whitespace and separators"),
    ("zero\u200bwidth\u200cjoin\u200d\ufeffbom\u2060wj", "zero-width characters (not whitespace)"),
    ("   \t\n\u3000\u00a0  ", "whitespace only"),
    ("", "empty"),
    # case
    ("İSTANBUL İzmir DİYARBAKIR ıi", "Turkish dotted capital I (lower() gives i + U+0307)"),
    ("ΟΔΟΣ ΣΑΣ Σ ΑΣ. Σ ΑΣ'Σ ΑΣ\u0301 ΑΣΑ", "Greek final sigma"),
    ("STRASSE ẞ ǅ ǲ K Ω Å ſ", "special case mappings"),
    ("it'ſ <|ſtartoftext|> ok", "long s matches 's' under IGNORECASE"),
    ("ᾳ α\u0345 ξ\u0345 \u0345alone", "U+0345 (matches no token class)"),
    ("Cafe\u0301 cafe\u0301 e\u0301\u0300 \u1100\u1161\u11a8", "NFC composition"),
    # scripts, emoji
    ("a 👩\u200d👩\u200d👧 family, 🇯🇵 flag, 👍🏽 thumbs, 🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f wales", "emoji sequences"),
    ("東京タワー 서울 北京 สวัสดี مرحبا שלום नमस्ते", "scripts"),
    ("١٢٣ ²³ ½ Ⅻ ① 𝟙𝟚", "numbers"),
    ("I'M HERE, WE'LL GO, THEY'RE, YOU'VE, SHE'D, IT'S, DON'T 'S 'T", "contractions (upper case)"),
    ("rock'n'roll o'clock '' ''s ' s", "apostrophes"),
    ("<|startoftext|>x<|endoftext|> !<|endoftext|> <start_of_text> <end_of_text> <|STARTOFTEXT|>", "literal special tokens"),
    # control and escapes
    ("\x1b[31mred\x1b[0m \x1b[1;4mbold\x1b[m \x1b[99", "ANSI escapes"),
    ("nul\x00 soh\x01 del\x7f \u206a\u206f \ufff9\ufffc \ufffd", "control characters"),
    ("c1 \x80\x81\x8d\x8f\x90\x93hi\x94\x9d\x9f", "C1 controls"),
    # mojibake
    ("cafÃ© crÃ¨me brÃ»lÃ©e", "UTF-8 read as windows-1252"),
    ("â€œquotedâ€\x9d and â€˜singleâ€™ â€” dash â€¦", "windows-1252 mojibake of punctuation"),
    ("Ã¢â‚¬Å“double mojibakeÃ¢â‚¬Â", "two layers"),
    ("ÐŸÑ€Ð¸Ð²ÐµÑ‚ Ð¼Ð¸Ñ€", "Cyrillic mojibake"),
    ("ðŸ˜€ emoji mojibake ðŸ‘", "emoji mojibake"),
    ("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "ftfy README example"),
    ("voilÃ  Ã  la carte", "restore_byte_a0"),
    ("Ã€ Ã¡ Ã‰ Ã± sÃ£o", "more Latin-1 mojibake"),
    ("naÃ¯ve cafÃ© mixed with real café", "inconsistent mojibake"),
    ("â€œ lossy â€\ufffd", "replace_lossy_sequences"),
    ("ИнтернÐµÑ‚", "partial mojibake"),
    ("×©×œ×•× ×¢×•×œ×", "Hebrew mojibake"),
    ("ã‚¯ãƒªã‚¹ãƒžã‚¹", "Japanese mojibake"),
    ("√©t√© macroman", "MacRoman mojibake"),
    ("Ã\u00a0 trÃ¨s", "a-grave with NBSP"),
]

FRAGMENTS = [
    "a", "photo", "of", "the", "cat", "A", "DOG", "Hello", "world", "x", "42", "3.14", "1,000",
    ",", ".", "!", "?", "...", "-", "_", "/", ":", ";", "(", ")", "[", "]", "{", "}", "#", "@", "%", "+", "=", "*",
    "'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "n't", "'", "’s", "ʼs", "'ſ",
    "&", "&amp;", "&amp", "&AMP;", "&amp;amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&#0;", "&#1;",
    "&#128;", "&#150;", "&#x110000;", "&#xD800;", "&#65", "&#x41", "&#", "&#x", "&;", "&notin;", "&notit;",
    "&EACUTE;", "&Eacute", "&eacute", "&ampx;", "&nbsp;", "&nbsp", "&SZLIG;", "&copy", "&frac12;", "&#x1F600;",
    "<", ">", "<b>", "<|startoftext|>", "<|endoftext|>", "<|ſtartoftext|>", "<start_of_text>",
    "“", "”", "‘", "’", "‚", "„", "‛", "‟", "ʼ", "«", "»",
    "ﬁ", "ﬂ", "ﬀ", "ﬃ", "ĳ", "Ǆ", "ǅ", "ŉ", "Ａ", "ｂ", "１", "！", "　", "ｱ", "ﾟ", "￦",
    " ", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680",
    "\u2000", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\u200d", "\ufeff",
    "\x00", "\x01", "\x1b[31m", "\x1b[0m", "\x1b", "\x7f", "\u206a", "\ufffc", "\ufffd",
    "\x80", "\x81", "\x93", "\x94", "\x9d", "\x9f",
    "Ã©", "Ã¨", "Ã ", "Ã\xa0", "Â ", "Â£", "Ã¼", "â€œ", "â€\x9d", "â€™", "â€", "Ã¢â‚¬Å“", "Ã¢â‚¬â„¢",
    "ÐŸÑ€Ð¸", "ì•ˆë…•", "æ—¥æœ¬", "ðŸ˜€", "√©", "×©", "Ã", "Â", "Ð", "â",
    "Σ", "ΣΑΣ", "ΟΔΟΣ", "ς", "σ", "ἈΣ", "İ", "ı", "ſ", "K", "ẞ", "Ω", "ǅ",
    "e\u0301", "\u0301", "\u0345", "α\u0345", "a\u0308", "\u0307", "\u1100\u1161",
    "🙂", "🚀", "👩\u200d👩\u200d👧", "🇯🇵", "👍🏽", "東京", "猫", "서울", "مرحبا", "שלום", "नमस्ते", "สวัสดี",
    "١٢٣", "²", "½", "Ⅻ", "①", "𝟙", "Ελληνικά", "кириллица", "ÄŒeÅ¡tina", "café", "naïve", "Straße",
]
SEPS = ["", " ", " ", "  ", "\n", ""]


def random_cases(n, seed=20250207):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        parts = []
        for _ in range(k):
            parts.append(rng.choice(FRAGMENTS))
            parts.append(rng.choice(SEPS))
        out.append("".join(parts))
    return out


INVALID_UTF8 = [
    (b"abc\xffdef", "lone 0xFF"),
    (b"caf\xc3", "truncated 2-byte sequence at end"),
    (b"\xe2\x82 euro?", "truncated 3-byte sequence (one U+FFFD)"),
    (b"\xed\xa0\x80\xed\xb0\x80 cesu", "encoded surrogates (one U+FFFD per byte)"),
    (b"\xf0\x9f\x98 smile \xf0\x9f", "truncated 4-byte sequences"),
    (b"\xc0\xaf\xe0\x80\xaf overlong", "overlong encodings"),
    (b"\xf4\x90\x80\x80 \xf5\x80 too big", "beyond U+10FFFF"),
    (b"\x80\x80\xbf continuation only", "stray continuation bytes"),
    (b"ok \xc3\xa9 \xe9 mixed latin-1", "valid and invalid mixed"),
]


def main():
    openai_names = ["<|startoftext|>", "<|endoftext|>"]
    openclip_names = ["<start_of_text>", "<end_of_text>"]
    tok = SimpleTokenizer(VOCAB, openai_names)
    tok_oc = SimpleTokenizer(VOCAB, openclip_names)

    cases = []

    def add(text, note, ctx=None, raw=None):
        case = {}
        if raw is not None:
            case["bytes_hex"] = raw.hex()
            text = raw.decode("utf-8", errors="replace")
        else:
            case["text"] = text
        case["clean"] = clean_lower(text)
        fixed = ftfy.fix_text(text)
        if fixed != text:
            case["ftfy"] = fixed
        case["ids"] = tok(text, ctx, pad=False)
        oc = tok_oc(text, ctx, pad=False)
        if oc != case["ids"]:
            case["ids_open_clip_names"] = oc
        if ctx is not None:
            case["context_length"] = ctx
        if note:
            case["note"] = note
        cases.append(case)

    with open(SHARED_REF, encoding="utf-8") as f:
        shared = json.load(f)
    for c in shared["cases"]:
        add(c["text"], "shared/vocab/tokenizer-reference.json")
        assert tok(c["text"]) == c["ids"], c["text"]

    for text, note in HAND:
        add(text, note)

    # Truncation: "a" is one token, so n copies give n body tokens.
    for n in (74, 75, 76, 77, 78, 200):
        add(" ".join(["a"] * n), "%d body tokens" % n)
    add("supercalifragilistic " * 30, "truncation inside a multi-token word run")
    for ctx in (1, 2, 3, 5, 16):
        add("a photo of a cat sitting on a mat", "context length %d" % ctx, ctx=ctx)
    add("", "empty, context length 1", ctx=1)

    for raw, note in INVALID_UTF8:
        add(None, "invalid UTF-8: " + note, raw=raw)

    ftfy_cases = os.path.join(os.path.dirname(os.path.dirname(ftfy.__file__)), "tests", "test_cases.json")
    if os.path.exists(ftfy_cases):
        with open(ftfy_cases, encoding="utf-8") as f:
            for c in json.load(f):
                add(c["original"], "ftfy tests/test_cases.json: " + c.get("label", ""))
    else:
        print("warning: %s not found; ftfy's own cases left out" % ftfy_cases, file=sys.stderr)

    for text in random_cases(2500):
        add(text, "random")

    extra_html = [
        "&", "&;", "&#", "&#;", "&#x", "&#xg;", "&#12ab;", "&amp", "&AMP", "&AMP;", "&Amp;", "&amp;amp;",
        "&notin", "&notin;", "&notit;", "&noti;", "&not;", "&ampamp;", "&lt&gt", "&lt;&gt;", "&#9;&#10;&#13;&#12;",
        "&" + "a" * 40 + ";", "&amp" + "x" * 40, "&\tamp;", "&\u00e9acute;", "&eacute\u00e9", "&#0000065;",
        "&#" + "9" * 30 + ";", "&#x" + "F" * 30 + ";", "&#x10FFFF;", "&#x10FFFE;", "&#xFDEF;", "&#xFDF0;",
        "&#x7F;&#x80;&#x9F;&#xA0;", "&#65;&#x41;&#X41;", "&ThickSpace;&NewLine;&Tab;", "&fjlig;&nbsp&nbsp;",
        "&zwnj&zwj;&lrm;", "&\r;&\rx;", "a&b&c;d", "&&amp;&&", "&am\u00e9p;", "&ampé", "&" + "é" * 40,
        "&" + "b" * 31 + "amp;", "&#x1F600&#128512", "&#1114112;", "&#55296;",
    ]
    html_cases = [[t, html.unescape(t)] for t in extra_html]

    out = {
        "source": (
            "preprocess/text/testdata/tokenizer/gen_reference.py: open_clip SimpleTokenizer algorithm "
            "(OpenAI special-token names) with ftfy %s, regex %s, CPython %s; "
            "bpe_simple_vocab_16e6.txt.gz. ids are unpadded: the tokenizer output is ids followed by 0s up to context_length (77 unless the case says)."
            % (ftfy.__version__, re.__version__, sys.version.split()[0])
        ),
        "context_length": 77,
        "sot": tok.sot_token_id,
        "eot": tok.eot_token_id,
        "cases": cases,
        "html_unescape": html_cases,
    }
    path = os.path.join(HERE, "reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d cases)" % (path, len(cases)))


if __name__ == "__main__":
    main()

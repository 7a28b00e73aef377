#!/usr/bin/env python3
"""Reference ids for preprocess/text/wordpiece.go (ImageReward's BERT tokenizer).

The transformers package is not available where this runs, so this file
transcribes, in plain Python, the code paths ImageReward's tokenizer call
takes in transformers 4.27 (the version ImageReward pins):

  BLIP init_tokenizer():  BertTokenizer.from_pretrained('bert-base-uncased')
                          + add_special_tokens({'bos_token': '[DEC]'})
                          + add_special_tokens({'additional_special_tokens': ['[ENC]']})
  ImageReward.score():    tokenizer(prompt, padding='max_length', truncation=True, max_length=35)

  PreTrainedTokenizer.tokenize   (lower-casing regex, Trie split on no-split tokens)
  BertTokenizer._tokenize        (BasicTokenizer, then WordpieceTokenizer)
  BasicTokenizer / WordpieceTokenizer / _is_whitespace / _is_control / _is_punctuation
  load_vocab, _add_tokens, build_inputs_with_special_tokens, truncation, padding

Usage: python3 gen_reference.py VOCAB.txt > reference.json
(VOCAB.txt = bert-base-uncased vocab.txt; not committed.)
"""
import collections
import json
import re
import sys
import unicodedata


def load_vocab(vocab_file):
    vocab = collections.OrderedDict()
    with open(vocab_file, "r", encoding="utf-8") as reader:
        tokens = reader.readlines()
    for index, token in enumerate(tokens):
        token = token.rstrip("\n")
        vocab[token] = index
    return vocab


def whitespace_tokenize(text):
    text = text.strip()
    if not text:
        return []
    return text.split()


def _is_whitespace(char):
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char):
    if char == "\t" or char == "\n" or char == "\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char):
    cp = ord(char)
    if (cp >= 33 and cp <= 47) or (cp >= 58 and cp <= 64) or (cp >= 91 and cp <= 96) or (cp >= 123 and cp <= 126):
        return True
    return unicodedata.category(char).startswith("P")


class BasicTokenizer:
    def __init__(self, do_lower_case=True, never_split=None, tokenize_chinese_chars=True, strip_accents=None):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or [])
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents

    def tokenize(self, text, never_split=None):
        never_split = self.never_split.union(set(never_split)) if never_split else self.never_split
        text = self._clean_text(text)
        if self.tokenize_chinese_chars:
            text = self._tokenize_chinese_chars(text)
        orig_tokens = whitespace_tokenize(text)
        split_tokens = []
        for token in orig_tokens:
            if token not in never_split:
                if self.do_lower_case:
                    token = token.lower()
                    if self.strip_accents is not False:
                        token = self._run_strip_accents(token)
                elif self.strip_accents:
                    token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token, never_split))
        return whitespace_tokenize(" ".join(split_tokens))

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        return "".join(c for c in text if unicodedata.category(c) != "Mn")

    def _run_split_on_punc(self, text, never_split=None):
        if never_split is not None and text in never_split:
            return [text]
        output = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text):
        out = []
        for char in text:
            if self._is_chinese_char(ord(char)):
                out += [" ", char, " "]
            else:
                out.append(char)
        return "".join(out)

    def _is_chinese_char(self, cp):
        return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF)
                or (0x2A700 <= cp <= 0x2B73F) or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF)
                or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))

    def _clean_text(self, text):
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            out.append(" " if _is_whitespace(char) else char)
        return "".join(out)


class WordpieceTokenizer:
    def __init__(self, vocab, unk_token, max_input_chars_per_word=100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output_tokens = []
        for token in whitespace_tokenize(text):
            chars = list(token)
            if len(chars) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(chars):
                end = len(chars)
                cur_substr = None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            if is_bad:
                output_tokens.append(self.unk_token)
            else:
                output_tokens.extend(sub_tokens)
        return output_tokens


class BLIPBertTokenizer:
    """BertTokenizer (slow) of bert-base-uncased with BLIP's [DEC] and [ENC]."""

    def __init__(self, vocab_file):
        self.vocab = load_vocab(vocab_file)
        self.do_lower_case = True
        self.all_special_tokens = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
        self.basic_tokenizer = BasicTokenizer(do_lower_case=True, never_split=None)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, "[UNK]")
        self.added_tokens_encoder = {}
        # sanitize_special_tokens(): the special tokens are not split
        self.unique_no_split_tokens = sorted(self.all_special_tokens)
        for tok in ["[DEC]", "[ENC]"]:  # add_special_tokens, one call each
            if tok not in self.vocab and tok not in self.added_tokens_encoder:
                self.added_tokens_encoder[tok] = len(self.vocab) + len(self.added_tokens_encoder)
            self.all_special_tokens.append(tok)
            self.unique_no_split_tokens = sorted(set(self.unique_no_split_tokens) | {tok})

    def _split_no_split(self, text):
        # Trie.split: cut the text at every (longest, leftmost) no-split token.
        pat = "(" + "|".join(re.escape(t) for t in sorted(self.unique_no_split_tokens, key=len, reverse=True)) + ")"
        return [p for p in re.split(pat, text)]

    def tokenize(self, text):
        if self.do_lower_case:
            escaped = [re.escape(s) for s in (self.unique_no_split_tokens + self.all_special_tokens)]
            pattern = r"(" + r"|".join(escaped) + r")|" + r"(.+?)"
            text = re.sub(pattern, lambda m: m.groups()[0] or m.groups()[1].lower(), text)
        no_split = set(self.unique_no_split_tokens)
        tokens = self._split_no_split(text)
        for i, token in enumerate(tokens):
            if token in no_split:
                left = tokens[i - 1] if i > 0 else None
                right = tokens[i + 1] if i < len(tokens) - 1 else None
                if right:
                    tokens[i + 1] = right.lstrip()
                if left:
                    tokens[i - 1] = left.rstrip()
        out = []
        for token in tokens:
            if not token:
                continue
            if token in no_split:
                out.append(token)
            else:
                out.extend(self._tokenize(token))
        return out

    def _tokenize(self, text):
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text, never_split=self.all_special_tokens):
            if token in self.basic_tokenizer.never_split:
                split_tokens.append(token)
            else:
                split_tokens += self.wordpiece_tokenizer.tokenize(token)
        return split_tokens

    def convert_token_to_id(self, token):
        if token in self.added_tokens_encoder:
            return self.added_tokens_encoder[token]
        return self.vocab.get(token, self.vocab["[UNK]"])

    def __call__(self, text, max_length=35):
        ids = [self.convert_token_to_id(t) for t in self.tokenize(text)]
        ids = ids[: max_length - 2]  # truncation=True, longest_first, one sequence
        ids = [self.vocab["[CLS]"]] + ids + [self.vocab["[SEP]"]]
        mask = [1] * len(ids)
        pad = max_length - len(ids)
        return ids + [self.vocab["[PAD]"]] * pad, mask + [0] * pad


CASES = [
    ("a photo of a cat", "plain"),
    ("A Photo Of A CAT", "upper case"),
    ("", "empty"),
    ("   \t\n ", "whitespace only"),
    ("an astronaut riding a horse on mars, trending on artstation, 4k, highly detailed", "a typical prompt"),
    ("Hello, world! It's 3.14 -- isn't it?", "punctuation split"),
    ("unaffable unbelievably hyperrealistic octane-render", "word pieces"),
    ("Café déjà vu naïve Ångström", "accents stripped"),
    ("İstanbul ΣΟΦΙΑ ΟΔΟΣ", "full-case I with dot, sigma lowered per character"),
    ("我爱北京天安门 and 東京", "CJK split"),
    ("한국어 텍스트", "Hangul decomposed by NFD"),
    ("ｆｕｌｌｗｉｄｔｈ ＡＢＣ", "fullwidth letters"),
    ("tab\there\nnew line\r\nand\u00a0nbsp\u2003em\u3000ideographic", "whitespace kinds"),
    ("zero\u200bwidth soft\u00adhyphen bidi\u200emark", "format characters removed"),
    ("ctrl\x01\x07\x1fchars\x7f\x85", "control characters removed"),
    ("line\u2028separator para\u2029graph", "Python splits at U+2028/U+2029"),
    ("nul\x00byte and \ufffd replacement", "NUL and U+FFFD"),
    ("[CLS] a [SEP] b [PAD] c [MASK] [UNK]", "special literals"),
    ("[DEC]a dog[ENC]", "BLIP's added tokens"),
    ("[cls] [Dec] [ENC", "not special: lower case, unclosed"),
    ("[[CLS]]", "brackets around a literal"),
    ("x" * 100, "100-character word"),
    ("y" * 101 + " ok", "101-character word is [UNK]"),
    ("emoji 🐱🚀 and ✨sparkles✨", "symbols not in the vocabulary"),
    ("“smart quotes” — em dash… ‘single’", "Unicode punctuation"),
    ("$100 @user #tag 50% a&b <html> {x} ~y `z` ^w |v| \\u _t_", "ASCII symbols"),
    ("e\u0301 combining acute, o\u0308 diaeresis", "decomposed accents"),
    ("ﬁne ligature and Ⅻ roman", "compatibility characters kept by NFD"),
    ("Ελληνικά русский עברית العربية हिन्दी", "other scripts"),
    ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
     "sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four and more words beyond the limit", "truncated to 33 tokens"),
    ("a " * 33, "exactly 33 tokens"),
    ("a " * 34, "34 tokens: one cut"),
    ("supercalifragilisticexpialidocious antidisestablishmentarianism", "long words in pieces"),
    ("q̃ẍ ʼn ǅ", "odd letters"),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tok = BLIPBertTokenizer(sys.argv[1])
    cases = []
    for text, note in CASES:
        ids, mask = tok(text)
        cases.append({"text": text, "note": note, "tokens": tok.tokenize(text), "ids": ids, "mask": mask})
    head = {
        "source": "transcription of transformers 4.27 BertTokenizer (slow) + BLIP [DEC]/[ENC], Python %s, unicodedata %s"
                  % (sys.version.split()[0], unicodedata.unidata_version),
        "context_length": 35,
        "dec": tok.added_tokens_encoder.get("[DEC]"),
        "enc": tok.added_tokens_encoder.get("[ENC]"),
    }
    out = json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n'
    out += ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
    sys.stdout.write(out + "\n]}\n")


if __name__ == "__main__":
    main()

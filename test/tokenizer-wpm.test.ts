import { describe, expect, it } from 'vitest';
import { TokenType } from '../src/tokenizer/types.js';
import type { WpmVocab } from '../src/tokenizer/types.js';
import { WpmTokenizer } from '../src/tokenizer/wpm.js';
import { hasShared } from './helpers/shared-data.js';
import { ggufTokenizer, readVocabTests, streamed, vocabPath } from './helpers/tokenizer-vectors.js';

/** [PAD] [UNK] [CLS] [SEP] [MASK], then the given pieces ("▁" marks a word start). */
function toyVocab(pieces: string[]): WpmVocab {
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const tokens = [...specials, ...pieces];
  return {
    tokens,
    types: Int32Array.from(tokens.map((_, i) => (i < specials.length ? TokenType.Control : TokenType.Normal))),
    bos: 2,
    sep: 3,
    unk: 1,
    eos: null,
    addBos: true,
  };
}

describe('WpmTokenizer', () => {
  const v = toyVocab(['▁un', '▁unaff', 'able', 'aff', '▁play', 'ing', '▁,', '▁!', '▁cafe', '▁中', '▁文', '▁a']);
  const tok = new WpmTokenizer(v);
  const ids = (text: string) => tok.encode(text, { addBos: false }).map((id) => v.tokens[id]);

  it('cuts each word greedily into the longest pieces from the left', () => {
    expect(ids('unaffable')).toEqual(['▁unaff', 'able']);
    expect(ids('playing')).toEqual(['▁play', 'ing']);
  });

  it('makes a whole word [UNK] when some position matches nothing', () => {
    expect(ids('playingx a')).toEqual(['[UNK]', '▁a']);
    expect(ids('xyz')).toEqual(['[UNK]']);
  });

  it('lowercases, drops accents (first NFD code point), splits around punctuation and CJK', () => {
    expect(ids('Café,PLAYING!')).toEqual(['▁cafe', '▁,', '▁play', 'ing', '▁!']);
    expect(ids('中文')).toEqual(['▁中', '▁文']);
    expect(ids(' \t a\u0000\u200b ')).toEqual(['▁a']);
  });

  it('wraps in [CLS] … [SEP] with add_special', () => {
    expect(tok.encode('a')).toEqual([2, v.tokens.indexOf('▁a'), 3]);
    expect(tok.encode('')).toEqual([2, 3]);
    expect(tok.encode('[SEP]a', { addBos: false, parseSpecial: true })).toEqual([3, v.tokens.indexOf('▁a')]);
  });

  it('decodes word starts as spaces, without the first one', () => {
    const playing = tok.encode('unaffable playing, a!', { addBos: false });
    expect(tok.decode(playing)).toBe('unaffable playing , a !');
    expect(tok.decode(tok.encode('playing'))).toBe('playing');
    expect(streamed(tok, playing)).toBe(tok.decode(playing));
    expect(tok.piece(v.tokens.indexOf('▁play'))).toBe(' play');
    expect(tok.specialTokenId('[MASK]')).toBe(4);
    expect(tok.eos).toBe(3);
  });
});

describe.skipIf(!hasShared)('llama.cpp tokenizer test vectors (ggml-vocab-bert-bge, WordPiece)', () => {
  it('encodes all 46 like llama.cpp, and re-encodes its own decoding to the same ids', () => {
    const tok = ggufTokenizer(vocabPath('bert-bge'));
    expect(tok).toBeInstanceOf(WpmTokenizer);
    const unk = tok.specialTokenId('[UNK]');
    expect(unk).toBe(100);
    const tests = readVocabTests(vocabPath('bert-bge'));
    expect(tests).toHaveLength(46);
    let reencoded = 0;
    for (const t of tests) {
      expect(tok.encode(t.text, { addBos: false }), JSON.stringify(t.text)).toEqual(t.ids);
      // Decoding loses case and accents but not the pieces (except [UNK], which renders as nothing).
      if (t.ids.includes(unk!)) continue;
      expect(tok.encode(tok.decode(t.ids), { addBos: false })).toEqual(t.ids);
      reencoded++;
    }
    expect(reencoded).toBeGreaterThan(30);
    expect(tok.encode('hello')).toEqual([101, ...tok.encode('hello', { addBos: false }), 102]);
  });
});

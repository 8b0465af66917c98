/** The tokenizer a GGUF file carries, chosen by `tokenizer.ggml.model` as llama.cpp chooses it. */
import { ModelFormatError } from '../formats/errors.js';
import { BpeTokenizer } from './bpe.js';
import { bpeVocabFromGguf, specialIdsFromGguf, spmVocabFromGguf, wpmVocabFromGguf } from './gguf-vocab.js';
import { SpmTokenizer } from './spm.js';
import type { Tokenizer } from './types.js';
import { WpmTokenizer } from './wpm.js';

const SUPPORTED: Record<string, string> = {
  llama: 'SentencePiece',
  gpt2: 'byte-level BPE',
  bert: 'WordPiece',
};

export function tokenizerFromGguf(meta: ReadonlyMap<string, unknown>, file: string): Tokenizer {
  const model = meta.get('tokenizer.ggml.model');
  const special = (vocabSize: number) => specialIdsFromGguf(meta, file, vocabSize);
  switch (model) {
    case 'llama': {
      const vocab = spmVocabFromGguf(meta, file);
      return new SpmTokenizer(vocab, special(vocab.tokens.length));
    }
    case 'gpt2': {
      const vocab = bpeVocabFromGguf(meta, file);
      return new BpeTokenizer(vocab, special(vocab.tokens.length));
    }
    case 'bert': {
      const vocab = wpmVocabFromGguf(meta, file);
      return new WpmTokenizer(vocab, special(vocab.tokens.length));
    }
  }
  const supported = Object.entries(SUPPORTED)
    .map(([name, what]) => `${name} (${what})`)
    .join(', ');
  const problem =
    model === undefined
      ? 'missing: the file has no tokenizer'
      : `unsupported tokenizer ${typeof model === 'string' ? `"${model}"` : `a ${typeof model}`}; supported: ${supported}`;
  throw new ModelFormatError(file, 'tokenizer.ggml.model', problem);
}

/** llama.cpp's token types (GGUF tokenizer.ggml.token_type). */
export const enum TokenType {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

/** A SentencePiece-style vocabulary, as stored in GGUF (model = "llama") or llama2.c tokenizer.bin. */
export interface SpmVocab {
  /** Pieces with "▁" (U+2581) for space, byte pieces as "<0xNN>". */
  readonly tokens: readonly string[];
  readonly scores: Float32Array;
  readonly types: Int32Array; // TokenType per id
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** Prepend one space to the text before tokenizing (SentencePiece dummy prefix). */
  readonly addSpacePrefix: boolean;
}

export interface EncodeOptions {
  /** Prepend BOS (default: the vocabulary's addBos). */
  addBos?: boolean;
  /** Recognise control tokens such as "<s>" written in the text (default false). */
  parseSpecial?: boolean;
}

/** Turns a stream of ids into text, holding back incomplete UTF-8 sequences. */
export interface StreamDecoder {
  /** Text completed by this token (may be ""). */
  push(id: number): string;
  /** Whatever is still held back, with invalid bytes as U+FFFD. */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  /** Whether encode() prepends BOS by default (and perplexity replaces chunk starts with it). */
  readonly addBos: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Inverse of encode: decode(encode(x)) === x (control tokens render as ""). */
  decode(ids: ArrayLike<number>): string;
  /** A streaming decoder whose concatenated output equals decode() of the same ids. */
  decoder(): StreamDecoder;
  /** Printable form of one token, for debugging and verbose output. */
  piece(id: number): string;
  /** End-of-generation token (EOS, or another control token marked so). */
  isEog(id: number): boolean;
}

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

/** A byte-level BPE vocabulary, as stored in GGUF (model = "gpt2"). */
export interface BpeVocab {
  /** Token texts in GPT-2's byte alphabet ("Ġthe"); control and user-defined tokens as written. */
  readonly tokens: readonly string[];
  readonly types: Int32Array; // TokenType per id
  /** Merge rules "left right", highest priority first. */
  readonly merges: readonly string[];
  /** `tokenizer.ggml.pre` (undefined: llama.cpp's "default"). */
  readonly pre: string | undefined;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
}

/** A WordPiece vocabulary as llama.cpp's converter stores it in GGUF (model = "bert"). */
export interface WpmVocab {
  /** Word-initial pieces start with "▁" (U+2581); continuation pieces carry no "##". */
  readonly tokens: readonly string[];
  readonly types: Int32Array; // TokenType per id
  /** [CLS], prepended by add_special. */
  readonly bos: number;
  /** [SEP], appended by add_special. */
  readonly sep: number;
  readonly unk: number;
  /** EOS if the file names one (WordPiece has none by default). */
  readonly eos: number | null;
  readonly addBos: boolean;
}

/**
 * Ids of special roles beyond bos/eos/unk, from `tokenizer.ggml.<role>_token_id`; a role left out
 * is looked up by llama.cpp's well-known token names instead.
 */
export interface SpecialIds {
  readonly eot?: number;
  readonly eom?: number;
  readonly fimPre?: number;
  readonly fimSuf?: number;
  readonly fimMid?: number;
  readonly fimPad?: number;
  readonly fimRep?: number;
  readonly fimSep?: number;
}

export interface EncodeOptions {
  /**
   * llama.cpp's add_special: prepend BOS and append EOS as the vocabulary asks (WordPiece: [CLS]
   * and [SEP]). Default: the vocabulary's addBos; false adds neither.
   */
  addBos?: boolean;
  /**
   * Recognise control tokens such as "<s>" or "<|im_start|>" written in the text (default false).
   * User-defined tokens are always recognised, as in llama.cpp.
   */
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
  /** End-of-generation token: EOS, EOT, and the control tokens llama.cpp treats so (<|eot_id|>, <|im_end|>…). */
  isEog(id: number): boolean;
  /**
   * The id of the control, unknown or user-defined token whose text is exactly `text`
   * (e.g. "<|im_start|>"), or undefined: what chat templates need to name turn markers.
   */
  specialTokenId(text: string): number | undefined;
}

// A Hugging Face tokenizer.json (through @huggingface/tokenizers) behind lowkv's Tokenizer
// interface, with the special-token rules of tokenizer_config.json and generation_config.json
// applied the way llama.cpp's converter and vocabulary loader apply them.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../formats/errors.js';
import { readJsonFile } from '../formats/json-file.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './types.js';

// llama.cpp (llama-vocab.cpp) treats these control tokens as end of generation wherever they occur.
const EOG_TEXTS = new Set([
  '<|eot_id|>',
  '<|eom_id|>',
  '<|im_end|>',
  '<|end|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '<|end_of_text|>',
  '<EOT>',
  '_<EOT>',
  '<｜end▁of▁sentence｜>',
  '<end_of_utterance>',
]);

interface AddedTokenJson {
  readonly id: number;
  readonly content: string;
  readonly special?: boolean;
}

export interface HfTokenizerFiles {
  /** tokenizer.json, parsed. */
  readonly tokenizer: Record<string, unknown>;
  /** tokenizer_config.json, parsed ({} when absent). */
  readonly config: Record<string, unknown>;
  /** generation_config.json, parsed, when present: its eos_token_id also ends generation. */
  readonly generation?: Record<string, unknown>;
  /** For error messages. */
  readonly tokenizerPath: string;
  readonly configPath: string;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  private readonly full: HfLibTokenizer;
  /** Same tokenizer without the special added tokens, for text whose "<|…|>" stays text. */
  private plainTokenizer?: HfLibTokenizer;
  private readonly special: ReadonlySet<number>;
  private readonly eog: ReadonlySet<number>;
  /** Ids below this have a token; ids up to vocabSize are the model's padding rows. */
  private readonly known: number;

  /**
   * @param modelVocab rows of the model's embedding; the vocabulary is padded to it as llama.cpp's
   * converter pads it (ids past the tokenizer's own are never produced and decode to "").
   */
  constructor(
    private readonly files: HfTokenizerFiles,
    modelVocab?: number,
  ) {
    const { tokenizer, config } = files;
    const tokFail = (field: string, problem: string): never => {
      throw new ModelFormatError(files.tokenizerPath, field, problem);
    };
    const cfgFail = (field: string, problem: string): never => {
      throw new ModelFormatError(files.configPath, field, problem);
    };
    if (typeof tokenizer.model !== 'object' || tokenizer.model === null) tokFail('model', 'missing');
    const added = addedTokens(tokenizer, tokFail);
    this.full = construct({ ...tokenizer, added_tokens: added }, config, files.tokenizerPath);

    let known = 0;
    for (const id of this.full.get_vocab(true).values()) known = Math.max(known, id + 1);
    this.known = known;
    if (modelVocab !== undefined && known > modelVocab) {
      tokFail('model.vocab', `has token ids up to ${known - 1}, but the model's embedding has only ${modelVocab} rows`);
    }
    this.vocabSize = modelVocab ?? known;
    this.special = new Set(added.filter((t) => t.special).map((t) => t.id));

    const idOf = (key: string): number | undefined => {
      const v = config[key];
      if (v === undefined || v === null) return undefined;
      const text = typeof v === 'string' ? v : typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
      if (text === undefined) return cfgFail(key, 'must be a token string or {"content": …}');
      const id = this.full.token_to_id(text);
      return id ?? cfgFail(key, `"${text}" is not in the vocabulary`);
    };
    const generationEos = eosIds(files.generation?.eos_token_id);
    const eos = idOf('eos_token') ?? generationEos[0];
    if (eos === undefined) cfgFail('eos_token', 'missing, and generation_config.json names no eos_token_id');
    this.eos = eos!;
    const templateBos = templateFirstToken(tokenizer.post_processor);
    // With no BOS token (Qwen), an empty prompt starts from EOS, the document separator.
    this.bos = idOf('bos_token') ?? (templateBos !== undefined ? this.full.token_to_id(templateBos) : undefined) ?? this.eos;
    const flag = (key: string): boolean | undefined => {
      const v = config[key];
      if (v === undefined || v === null) return undefined;
      return typeof v === 'boolean' ? v : cfgFail(key, 'must be true or false');
    };
    // tokenizer_config.json decides; without it, whether tokenizer.json's template starts with BOS.
    this.addBos = flag('add_bos_token') ?? (templateBos !== undefined && this.full.token_to_id(templateBos) === this.bos);
    this.addEos = flag('add_eos_token') ?? false;

    const eog = new Set([this.eos, ...generationEos.filter((id) => id < this.vocabSize)]);
    for (const t of added) if (t.special && EOG_TEXTS.has(t.content)) eog.add(t.id);
    this.eog = eog;
  }

  specialTokenId(text: string): number | undefined {
    const id = this.full.token_to_id(text);
    return id !== undefined && this.special.has(id) ? id : undefined;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const tok = opts.parseSpecial ? this.full : this.plain();
    const out: number[] = [];
    if (opts.addBos ?? this.addBos) out.push(this.bos);
    if (text.length > 0) {
      const { ids, tokens } = tok.encode(text, { add_special_tokens: false });
      for (let i = 0; i < ids.length; i++) {
        // A piece outside the vocabulary with no unk token to stand for it.
        if (ids[i] === undefined) throw new Error(`cannot tokenize ${JSON.stringify(tokens[i])}: not in the vocabulary and the tokenizer has no unk token`);
        out.push(ids[i]);
      }
    }
    if (this.addEos) out.push(this.eos);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = this.checkId(ids[i]);
      // Control tokens render as "" (as llama.cpp's detokenizer does), padding rows too.
      if (id < this.known && !this.special.has(id) && this.full.id_to_token(id) !== undefined) kept.push(id);
    }
    if (kept.length === 0) return '';
    return this.full.decode(kept, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /**
   * Decodes each new token in the context of the text already emitted (the last emitted token
   * onwards): decoders that strip the first token's space or combine byte tokens see the same
   * neighbours as in decode() of the whole sequence. Text ending in an incomplete UTF-8
   * sequence (U+FFFD) is held back until a later token completes it.
   */
  decoder(): StreamDecoder {
    const ids: number[] = [];
    let anchor = 0; // where the decoding context starts
    let read = 0; // tokens whose text has been emitted
    const emit = (final: boolean): string => {
      const before = read > anchor ? this.decode(ids.slice(anchor, read)) : '';
      const after = this.decode(ids.slice(anchor));
      if (!final && (after.length <= before.length || after.endsWith('\uFFFD'))) return '';
      // Next context: the last emitted token that renders text (control tokens render nothing).
      for (let i = ids.length - 1; i >= read; i--) {
        if (!this.special.has(ids[i]) && ids[i] < this.known) {
          anchor = i;
          break;
        }
      }
      read = ids.length;
      return after.slice(before.length);
    };
    return {
      push: (id: number): string => {
        ids.push(this.checkId(id));
        return emit(false);
      },
      flush: (): string => (read < ids.length ? emit(true) : ''),
    };
  }

  piece(id: number): string {
    this.checkId(id);
    const token = this.full.id_to_token(id);
    if (id >= this.known || token === undefined) return `[PAD${id}]`;
    if (this.special.has(id)) return token;
    return this.full.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  isEog(id: number): boolean {
    return this.eog.has(id);
  }

  private plain(): HfLibTokenizer {
    if (!this.plainTokenizer) {
      const tokenizer = this.files.tokenizer;
      const nonSpecial = ((tokenizer.added_tokens ?? []) as AddedTokenJson[]).filter((t) => !t.special);
      this.plainTokenizer = construct({ ...tokenizer, added_tokens: nonSpecial }, this.files.config, this.files.tokenizerPath);
    }
    return this.plainTokenizer;
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is out of range for a vocabulary of ${this.vocabSize} tokens`);
    }
    return id;
  }
}

function construct(tokenizer: Record<string, unknown>, config: Record<string, unknown>, path: string): HfLibTokenizer {
  try {
    return new HfLibTokenizer(tokenizer, config);
  } catch (e) {
    throw new ModelFormatError(path, 'tokenizer', `not usable by @huggingface/tokenizers: ${(e as Error).message}`);
  }
}

function addedTokens(tokenizer: Record<string, unknown>, fail: (f: string, p: string) => never): AddedTokenJson[] {
  const added = tokenizer.added_tokens ?? [];
  if (!Array.isArray(added)) return fail('added_tokens', 'must be an array');
  for (const [i, t] of added.entries()) {
    if (typeof t !== 'object' || t === null || !Number.isSafeInteger(t.id) || t.id < 0 || typeof t.content !== 'string') {
      fail(`added_tokens[${i}]`, 'must have an integer id and a string content');
    }
  }
  return added as AddedTokenJson[];
}

/** generation_config.json eos_token_id: one id or a list. */
function eosIds(v: unknown): number[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is number => Number.isSafeInteger(x) && (x as number) >= 0);
}

/** The special token a TemplateProcessing post-processor puts before a single sequence, if any. */
function templateFirstToken(pp: unknown): string | undefined {
  if (typeof pp !== 'object' || pp === null) return undefined;
  const p = pp as { type?: string; processors?: unknown[]; single?: unknown[] };
  if (p.type === 'Sequence' && Array.isArray(p.processors)) {
    for (const sub of p.processors) {
      const t = templateFirstToken(sub);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single) || p.single.length === 0) return undefined;
  const first = p.single[0] as { SpecialToken?: { id?: unknown } };
  return typeof first?.SpecialToken?.id === 'string' ? first.SpecialToken.id : undefined;
}

/**
 * The chat template of tokenizer_config.json (`chat_template`: a string, or a list of named
 * templates of which "default" wins), else of chat_template.jinja beside it.
 */
export function chatTemplateOf(config: Record<string, unknown>, dir: string, configPath: string): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.filter((x): x is { name: string; template: string } => typeof x?.name === 'string' && typeof x?.template === 'string');
    if (named.length !== t.length) throw new ModelFormatError(configPath, 'chat_template', 'a list of templates must hold {name, template} objects');
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  if (t !== undefined && t !== null) throw new ModelFormatError(configPath, 'chat_template', 'must be a string or a list of named templates');
  const jinja = join(dir, 'chat_template.jinja');
  return existsSync(jinja) ? readFileSync(jinja, 'utf8') : undefined;
}

/** tokenizer.json, tokenizer_config.json and generation_config.json of a Hugging Face folder. */
export function readHfTokenizerFiles(dir: string): HfTokenizerFiles {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const configPath = join(dir, 'tokenizer_config.json');
  const generationPath = join(dir, 'generation_config.json');
  return {
    tokenizer: readJsonFile(tokenizerPath, 'the folder has no tokenizer.json (only tokenizer.json tokenizers are supported)'),
    config: existsSync(configPath) ? readJsonFile(configPath, 'tokenizer_config.json') : {},
    generation: existsSync(generationPath) ? readJsonFile(generationPath, 'generation_config.json') : undefined,
    tokenizerPath,
    configPath,
  };
}

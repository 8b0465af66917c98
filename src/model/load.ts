import { existsSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelFormatError } from '../formats/errors.js';
import { withFile } from '../formats/file.js';
import { readGguf } from '../formats/gguf.js';
import { readLlama2c } from '../formats/llama2c.js';
import { tokenizerFromGguf } from '../tokenizer/from-gguf.js';
import { HfTokenizer, chatTemplateOf, readHfTokenizerFiles } from '../tokenizer/hf.js';
import { readLlama2cTokenizer } from '../tokenizer/llama2c-vocab.js';
import { SpmTokenizer } from '../tokenizer/spm.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { llamaFromGguf } from './from-gguf.js';
import { ggufFromHf } from './from-hf.js';
import type { LlamaConfig, LlamaWeights } from './types.js';

export type ModelFormat = 'gguf' | 'llama2c' | 'hf';

export interface LoadedModelFile {
  readonly path: string;
  readonly format: ModelFormat;
  readonly name: string;
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
  readonly tokenizer: Tokenizer;
  /** Where the tokenizer came from: the model file itself, a tokenizer.bin beside it, or tokenizer.json. */
  readonly tokenizerPath: string;
  /** Jinja chat template (GGUF tokenizer.chat_template, or tokenizer_config.json), when the model has one. */
  readonly chatTemplate?: string;
}

const CHAT_TEMPLATE_KEY = 'tokenizer.chat_template';

export interface LoadFileOptions {
  /** llama2.c only: the tokenizer.bin to use instead of searching beside the model. */
  readonly tokenizerPath?: string;
}

/**
 * Loads a GGUF or llama2.c checkpoint (told apart by their first bytes), or a Hugging Face folder
 * (config.json + safetensors + tokenizer.json), and its tokenizer.
 */
export function loadModelFile(path: string, opts: LoadFileOptions = {}): LoadedModelFile {
  const hfDir = hfFolderOf(path);
  if (hfDir !== undefined) {
    if (opts.tokenizerPath) throw new ModelFormatError(hfDir, 'tokenizer', 'a model folder carries its own tokenizer.json; --tokenizer applies to llama2.c checkpoints only');
    return loadHfFolder(hfDir);
  }
  if (sniffMagic(path) === 'GGUF') {
    if (opts.tokenizerPath) throw new ModelFormatError(path, 'tokenizer', 'a GGUF file carries its own tokenizer; --tokenizer applies to llama2.c checkpoints only');
    const file = readGguf(path);
    const { config, weights } = llamaFromGguf(file);
    const tokenizer = tokenizerFromGguf(file.metadata, path);
    checkVocab(path, config, tokenizer);
    const name = file.metadata.get('general.name');
    const chatTemplate = file.metadata.get(CHAT_TEMPLATE_KEY);
    if (chatTemplate !== undefined && typeof chatTemplate !== 'string') throw new ModelFormatError(path, CHAT_TEMPLATE_KEY, 'must be a string');
    return { path, format: 'gguf', name: typeof name === 'string' ? name : basename(path), config, weights, tokenizer, tokenizerPath: path, chatTemplate };
  }
  const { config, weights } = readLlama2c(path);
  const tokenizerPath = opts.tokenizerPath ?? findLlama2cTokenizer(path, config.vocabSize);
  const tokenizer = new SpmTokenizer(readLlama2cTokenizer(tokenizerPath, config.vocabSize));
  checkVocab(tokenizerPath, config, tokenizer);
  return { path, format: 'llama2c', name: basename(path), config, weights, tokenizer, tokenizerPath };
}

/** A Hugging Face folder, given as the folder itself or as its config.json or a safetensors file in it. */
function hfFolderOf(path: string): string | undefined {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    return undefined; // a missing path is reported by the file readers
  }
  if (isDir) return path;
  const name = basename(path);
  if (name !== 'config.json' && !name.endsWith('.safetensors') && !name.endsWith('.safetensors.index.json')) return undefined;
  const dir = dirname(path);
  if (existsSync(join(dir, 'config.json'))) return dir;
  throw new ModelFormatError(path, 'path', 'safetensors weights need their Hugging Face folder (config.json, tokenizer.json beside them); pass the folder');
}

function loadHfFolder(dir: string): LoadedModelFile {
  const file = ggufFromHf(dir);
  const files = readHfTokenizerFiles(dir); // before the weights: a missing tokenizer fails fast
  const { config, weights } = llamaFromGguf(file);
  const tokenizer = new HfTokenizer(files, config.vocabSize);
  const chatTemplate = chatTemplateOf(files.config, dir, files.configPath);
  return { path: dir, format: 'hf', name: basename(dir), config, weights, tokenizer, tokenizerPath: files.tokenizerPath, chatTemplate };
}

function sniffMagic(path: string): string {
  return withFile(path, (fd) => {
    const b = Buffer.alloc(4);
    return b.subarray(0, readSync(fd, b, 0, 4, 0)).toString('latin1');
  });
}

function checkVocab(tokenizerFile: string, config: LlamaConfig, tokenizer: Tokenizer): void {
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new ModelFormatError(
      tokenizerFile,
      'vocab_size',
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding has ${config.vocabSize} rows`,
    );
  }
}

/**
 * llama2.c keeps the tokenizer in a separate file: tokenizer.bin beside the checkpoint, or a
 * tok<N>.bin (tok512.bin, tok4096.bin); the one named for the model's vocabulary size wins.
 */
export function findLlama2cTokenizer(modelPath: string, vocabSize: number): string {
  const dir = dirname(modelPath);
  const candidates = readdirSync(dir).filter((f) => f === 'tokenizer.bin' || /^tok.*\.bin$/.test(f));
  const pick =
    candidates.find((f) => f === `tok${vocabSize}.bin`) ??
    candidates.find((f) => f === 'tokenizer.bin') ??
    (candidates.length === 1 ? candidates[0] : undefined);
  if (!pick) {
    const why = candidates.length === 0 ? 'no tokenizer.bin or tok*.bin beside it' : `several candidates (${candidates.join(', ')}) and none is tok${vocabSize}.bin`;
    throw new ModelFormatError(modelPath, 'tokenizer', `${why}; pass --tokenizer FILE`);
  }
  return join(dir, pick);
}

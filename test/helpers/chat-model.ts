import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGguf, readTensor } from '../../src/formats/gguf.js';
import { copyMetadataEntry, writeGguf, type GgufTensorToWrite, type GgufTypedValue } from '../../src/formats/gguf-write.js';
import { GgmlType } from '../../src/formats/ggml-types.js';

/**
 * mistralai/Mistral-7B-Instruct-v0.2's published chat template (tokenizer_config.json): the reply
 * follows " [/INST]" verbatim and ends with EOS, a SentencePiece control token like stories260K's.
 */
export const MISTRAL_TEMPLATE = String.raw`{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}`;

/**
 * A copy of an F32 GGUF with `tokenizer.chat_template` set (or removed, for `undefined`; a typed
 * value writes a malformed one), in a fresh temporary directory.
 */
export function withChatTemplate(src: string, template: string | GgufTypedValue | undefined, name = 'chat.gguf'): string {
  const file = readGguf(src);
  const key = 'tokenizer.chat_template';
  const metadata = [...file.metadata.keys()].filter((k) => k !== key).map((k) => [k, copyMetadataEntry(file, k)] as const);
  if (template !== undefined) metadata.push([key, typeof template === 'string' ? { type: 'string', value: template } : template]);
  const tensors: GgufTensorToWrite[] = file.tensors.map((t) => {
    if (t.type !== GgmlType.F32) throw new Error(`${src}: tensor ${t.name} is not F32`);
    return { name: t.name, type: GgmlType.F32, ne: t.ne.map(Number), data: readTensor(file, t.name) };
  });
  const out = join(mkdtempSync(join(tmpdir(), 'lowkv-chat-')), name);
  writeGguf(out, { metadata, tensors });
  return out;
}

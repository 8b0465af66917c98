import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ChatOptions, ChatSession } from '../src/engine/chat-session.js';
import { loadModel } from '../src/engine/model.js';
import { CLI } from './helpers/cli.js';
import { MISTRAL_TEMPLATE, withChatTemplate } from './helpers/chat-model.js';
import { HD64_GGUF, STORIES_GGUF } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

/** `lowkv chat ARGS` with `lines` piped to stdin, as a user's script would run it. */
function chatPipe(args: string[], lines: string[]): { code: number; stdout: string; stderr: string } {
  const { LOWKV_MODEL: _, ...env } = process.env;
  const r = spawnSync(process.execPath, [CLI, 'chat', ...args], {
    input: lines.map((l) => l + '\n').join(''),
    encoding: 'utf8',
    env: { ...env, LOWKV_THREADS: '1' },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Reads `s` from the front: exact strings and whole lines matching a pattern. */
class Reader {
  constructor(private rest: string) {}
  text(expected: string): void {
    expect(this.rest.slice(0, expected.length)).toBe(expected);
    this.rest = this.rest.slice(expected.length);
  }
  line(pattern: RegExp): RegExpMatchArray {
    const end = this.rest.indexOf('\n');
    const line = this.rest.slice(0, end);
    const m = line.match(pattern);
    expect(m, `"${line}" should match ${pattern}`).not.toBeNull();
    this.rest = this.rest.slice(end + 1);
    return m!;
  }
  end(): void {
    expect(this.rest).toBe('');
  }
}

async function reply(chat: ChatSession, text: string, opts: ChatOptions): Promise<string> {
  let out = '';
  for await (const c of chat.send(text, opts)) out += c.text;
  return out;
}

describe.skipIf(!hasShared)('lowkv chat with piped stdin (one turn per line)', () => {
  let model: string;
  beforeAll(() => {
    model = withChatTemplate(STORIES_GGUF, MISTRAL_TEMPLATE);
  });
  const Q1 = 'Tell me a story about a cat.';
  const Q2 = 'What did the cat do next?';

  it('keeps the conversation and the KV cache across turns; /stats, /reset, /help, /exit', async () => {
    // The same conversation through the library: the reference for every reply and count.
    const m = await loadModel(model);
    const ref = m.chatSession({ ctx: 256, cacheTypeK: 'q4_0' });
    const opts = { temperature: 0, maxTokens: 24 };
    const r1 = await reply(ref, Q1, opts);
    const held1 = ref.session.length;
    const bits1 = ref.session.cache.bitsPerValue();
    const r2 = await reply(ref, Q2, opts);
    const held2 = ref.session.length;
    const reused2 = ref.lastResult!.reusedTokens;

    const r = chatPipe(
      ['-m', model, '--temp', '0', '-n', '24', '--ctx', '256', '--cache-type-k', 'q4_0'],
      [Q1, '/stats', '', Q2, '/stats', '/reset', '/stats', Q1, '/help', '/bogus', '/exit', 'never read'],
    );
    expect(r.code).toBe(0);
    const out = new Reader(r.stdout);
    out.text(r1 + '\n');
    const s1 = out.line(/^KV cache: [\d.]+ KiB held \(K [\d.]+ KiB, V [\d.]+ KiB\) for (\d+) of 256 tokens, \d+ B\/token$/);
    expect(Number(s1[1])).toBe(held1);
    out.text(`K q4_0 / V f32: K ${bits1.k.toFixed(2)} bits/value, V ${bits1.v.toFixed(2)} bits/value\n`);
    const last1 = out.line(/^last reply: 24 tokens at [\d.]+ tok\/s \(length\); prompt: (\d+) new tokens at [\d.]+ tok\/s, 0 reused from the cache$/);
    expect(Number(last1[1])).toBe(held1 - 23);
    out.text(r2 + '\n');
    const s2 = out.line(/for (\d+) of 256 tokens/);
    expect(Number(s2[1])).toBe(held2);
    out.line(/^K q4_0 \/ V f32/);
    const last2 = out.line(/^last reply: 24 tokens at .* prompt: (\d+) new tokens at [\d.]+ tok\/s, (\d+) reused from the cache$/);
    expect(Number(last2[2])).toBe(reused2);
    expect(Number(last2[1])).toBe(held2 - 23 - reused2);
    out.text('conversation and KV cache cleared\n');
    out.line(/^KV cache: 0 B held \(K 0 B, V 0 B\) for 0 of 256 tokens$/);
    out.line(/^K q4_0 \/ V f32$/);
    // After /reset the first question gets the first answer again.
    out.text(r1 + '\n');
    out.line(/^\/reset +forget the conversation/);
    out.line(/^\/stats /);
    out.line(/^\/help /);
    out.line(/^\/exit /);
    out.line(/^Ctrl-C during a reply stops it/);
    out.end();
    expect(r.stderr).toBe('[reply cut at 24 tokens]\n'.repeat(3) + 'unknown command /bogus; /help lists them\n');
  });

  it('SIGINT (Ctrl-C from a terminal) stops the running reply and the chat goes on', async () => {
    const { LOWKV_MODEL: _, ...env } = process.env;
    const child = spawn(process.execPath, [CLI, 'chat', '-m', withChatTemplate(HD64_GGUF, MISTRAL_TEMPLATE), '--seed', '1'], {
      env: { ...env, LOWKV_THREADS: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // A reply without -n runs to the end of the 512-token context: interrupt it once it streams.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        resolve();
      });
      child.stdin.write('Tell me about the sea.\n');
    });
    child.kill('SIGINT');
    await new Promise<void>((resolve) => {
      const check = (): void => (stderr.includes('[reply stopped]') ? resolve() : void setTimeout(check, 20));
      check();
    });
    child.stdin.end('/stats\n');
    expect(await exited).toBe(0);
    expect(stderr).toBe('[reply stopped]\n');
    expect(stdout).toMatch(/last reply: \d+ tokens at [\d.]+ tok\/s \(aborted\)/);
  });

  it('a turn the template refuses is reported and the chat goes on', () => {
    // Mistral's template has no system role.
    const r = chatPipe(['-m', model, '--system', 'Be brief.', '-n', '4'], ['Hi', '/stats']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^error: the chat template refused the conversation: Conversation roles must alternate/);
    expect(r.stdout).toMatch(/^KV cache: 0 B held/);
  });

  it('says once on stderr that a model without a template gets ChatML', () => {
    const r = chatPipe(['-m', STORIES_GGUF, '--temp', '0', '-n', '5'], ['Hi', 'Hello']);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/has no chat template; using ChatML/g)).toHaveLength(1);
    expect(r.stdout.split('\n')).toHaveLength(3);
  });
});

const hasTmux = spawnSync('tmux', ['-V']).status === 0;

describe.skipIf(!hasShared || !hasTmux)('lowkv chat in a terminal (tmux)', () => {
  const socket = `lowkv-test-${process.pid}`;
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const screen = (): string => tmux('capture-pane', '-p', '-J', '-t', 'chat', '-S', '-200');
  async function waitFor(test: (s: string) => boolean, what: string, ms = 60_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const s = screen();
      if (test(s)) return s;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}; screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it('streams a reply, Ctrl-C stops it and keeps it, Ctrl-C at an empty prompt exits', async () => {
    const model = withChatTemplate(HD64_GGUF, MISTRAL_TEMPLATE);
    const cmd = `LOWKV_THREADS=1 '${process.execPath}' '${CLI}' chat -m '${model}' --seed 7; echo "EXITED:$?"; sleep 60`;
    tmux('new-session', '-d', '-s', 'chat', '-x', '160', '-y', '50', cmd);
    try {
      await waitFor((s) => s.includes('/help lists commands.\n>'), 'the prompt');
      tmux('send-keys', '-t', 'chat', 'Tell me about the sea.', 'Enter');
      // Ctrl-C once the reply has started streaming (the full reply would run to the context end).
      const Q = 'Tell me about the sea.\n';
      await waitFor((s) => s.includes(Q) && /\S/.test(s.slice(s.indexOf(Q) + Q.length)), 'the reply to start');
      tmux('send-keys', '-t', 'chat', 'C-c');
      let s = await waitFor((x) => x.includes('[reply stopped]\n>'), 'the reply to stop');
      const partial = s.slice(s.indexOf(Q) + Q.length, s.indexOf('[reply stopped]')).trim();
      expect(partial.length).toBeGreaterThan(0);

      tmux('send-keys', '-t', 'chat', '/stats', 'Enter');
      s = await waitFor((x) => /last reply: .*\n>/.test(x), '/stats');
      const m = s.match(/for (\d+) of 512 tokens[\s\S]*last reply: (\d+) tokens at [\d.]+ tok\/s \(aborted\); prompt: (\d+) new tokens/);
      expect(m).not.toBeNull();
      const [held, generated, prompt] = [Number(m![1]), Number(m![2]), Number(m![3])];
      expect(generated).toBeLessThan(512 - prompt);
      // Every token of the aborted reply stays in the cache.
      expect(held).toBe(prompt + generated);

      // A half-typed line: Ctrl-C discards it; at the then empty prompt Ctrl-C leaves.
      tmux('send-keys', '-t', 'chat', 'half a thought');
      await waitFor((x) => x.includes('> half a thought'), 'the typed text');
      tmux('send-keys', '-t', 'chat', 'C-c');
      await waitFor((x) => !x.includes('half a thought'), 'the line to clear');
      tmux('send-keys', '-t', 'chat', 'C-c');
      await waitFor((x) => x.includes('EXITED:0'), 'the exit');
    } finally {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
    }
  });

  it('Ctrl-D at an empty prompt exits', async () => {
    const cmd = `LOWKV_THREADS=1 '${process.execPath}' '${CLI}' chat -m '${STORIES_GGUF}'; echo "EXITED:$?"; sleep 60`;
    tmux('new-session', '-d', '-s', 'chat', '-x', '160', '-y', '50', cmd);
    try {
      await waitFor((s) => s.includes('/help lists commands.\n>'), 'the prompt');
      tmux('send-keys', '-t', 'chat', 'C-d');
      await waitFor((x) => x.includes('EXITED:0'), 'the exit');
    } finally {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
    }
  });
});

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { calibrateMethods, needsCalibration } from '../eval/calibrate-methods.js';
import { evaluate, type EvalRow } from '../eval/evaluate.js';
import { CodecSpecError } from '../kv/codec.js';
import { ALL_METHODS, CALIBRATED_METHODS, parseMethods } from '../eval/methods.js';
import { passkey, type PasskeyRow } from '../eval/passkey.js';
import { perLayerProfile, type PerLayerRow } from '../eval/per-layer.js';
import { writeTradeoffPlots } from '../eval/plot.js';
import { intArg, interruptSignal, openModel, readTextFile, threadsOption, modelHelp } from './common.js';
import { progress } from './progress.js';

interface EvalFlags {
  model?: string;
  tokenizer?: string;
  file: string;
  methods: string;
  ctx: number;
  chunks?: number;
  out?: string;
  plot: boolean;
  perLayer: boolean;
  saveReference?: string;
  reference?: string;
  calibrate?: string;
  calibTokens: number;
  seed: number;
}

const COLUMNS: Array<[string, (r: EvalRow) => string]> = [
  ['method', (r) => r.label],
  ['bits K', (r) => r.bitsK.toFixed(3)],
  ['bits V', (r) => r.bitsV.toFixed(3)],
  ['bits/value', (r) => r.bits.toFixed(3)],
  ['KV bytes/token', (r) => r.bytesPerToken.toFixed(0)],
  ['PPL', (r) => r.ppl.toFixed(4)],
  ['ΔPPL', (r) => r.dPpl.toFixed(4)],
  ['ΔPPL %', (r) => r.dPplPct.toFixed(3)],
  ['mean KLD', (r) => r.kld.toExponential(3)],
  ['same top-1 %', (r) => r.top1.toFixed(2)],
  ['time s', (r) => r.seconds.toFixed(1)],
];

export function markdownTable(rows: readonly EvalRow[]): string {
  const head = `| ${COLUMNS.map(([h]) => h).join(' | ')} |`;
  const rule = `|${COLUMNS.map(() => '---').join('|')}|`;
  return [head, rule, ...rows.map((r) => `| ${COLUMNS.map(([, f]) => f(r)).join(' | ')} |`)].join('\n');
}

function csv(rows: readonly EvalRow[]): string {
  const keys = Object.keys(rows[0]) as Array<keyof EvalRow>;
  const cell = (v: unknown): string => (typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : String(v));
  return [keys.join(','), ...rows.map((r) => keys.map((k) => cell(r[k])).join(','))].join('\n') + '\n';
}

export function evalCommand(): Command {
  const cmd = new Command('eval')
    .description('compare KV methods on one model and text: bits/value, PPL, KL divergence to the f32 cache, top-1 agreement, time')
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .option('-f, --file <text>', 'text to evaluate on')
    .option('--methods <list>', `methods separated by spaces or ';': SPEC, K|V, policy=FILE, or all (${ALL_METHODS.length} methods, ${ALL_METHODS.length + CALIBRATED_METHODS.length} with --calibrate)`, 'all')
    .option('-c, --ctx <tokens>', 'tokens per chunk', intArg('--ctx', 4), 512)
    .option('--chunks <n>', 'evaluate at most n chunks', intArg('--chunks', 1))
    .option('--out <dir>', 'write results.csv and results.json (and plots) here')
    .option('--plot', 'write bits/value vs ΔPPL % and vs KLD plots (SVG and PNG) into --out', false)
    .option('--per-layer', 'per-layer relative error of K, V and the attention output instead', false)
    .option('--save-reference <file>', 'save the f32-cache reference for reuse')
    .option('--reference <file>', 'read a saved f32-cache reference instead of computing it')
    .option('--calibrate <text>', 'calibrate kvquant/cq methods given without calib=FILE on this text (files go to --out)')
    .option('--calib-tokens <n>', 'calibration tokens to collect', intArg('--calib-tokens', 1), 16384)
    .option('-s, --seed <n>', 'seed of every random choice (calibration k-means); same seed, same numbers', intArg('--seed', 0), 1)
    .action(async (flags: EvalFlags) => {
      if (!flags.file) throw new Error("required option '-f, --file <text>' not specified");
      if (flags.plot && !flags.out) throw new Error('--plot writes its files into --out DIR: give one');
      let methods = parseMethods(flags.methods, { calibrated: flags.calibrate !== undefined });
      const uncalibrated = methods.flatMap((m) => (m.policy.layers ? [] : [m.policy.k, m.policy.v])).filter(needsCalibration);
      if (uncalibrated.length && !flags.calibrate) {
        throw new Error(`${uncalibrated[0]} learns from data: give --calibrate TEXT (calibrated here, seeded by --seed) or calib=FILE from \`lowkv calibrate\``);
      }
      const model = await openModel(flags);
      const signal = interruptSignal();
      if (flags.calibrate && uncalibrated.length) {
        const text = readTextFile(flags.calibrate);
        const ctx = Math.min(flags.ctx, model.config.contextLength);
        const bar = progress('calibrate', Math.ceil(Math.min(flags.calibTokens, model.tokenizer.encode(text).length) / ctx));
        methods = await calibrateMethods(model, methods, {
          file: flags.calibrate,
          text,
          dir: flags.out ?? mkdtempSync(join(tmpdir(), 'lowkv-calib-')),
          ctx,
          tokens: flags.calibTokens,
          seed: flags.seed,
          signal,
          onChunk: (d) => bar.update(d, ''),
        });
        bar.stop();
        if (signal.aborted) throw new Error('interrupted during calibration');
      }
      // Build every cache once up front so a bad spec fails before minutes of work; methods from
      // `all` that this model does not allow are left out with a note.
      methods = methods.filter((m) => {
        try {
          model.llama.newCache(1, m.policy);
          return true;
        } catch (e) {
          if (!m.fromAll || !(e instanceof CodecSpecError)) throw e;
          process.stderr.write(`skipping ${m.label}: ${e.message}\n`);
          return false;
        }
      });
      const tokens = model.tokenizer.encode(readTextFile(flags.file));
      const bos = model.tokenizer.addBos ? model.tokenizer.bos : undefined;
      const total = Math.min(Math.floor(tokens.length / flags.ctx), flags.chunks ?? Infinity);
      if (flags.perLayer) return perLayer(model.llama, tokens, methods, flags, bos, total, signal);
      process.stderr.write(`${flags.file}: ${tokens.length} tokens, ${total} chunks of ${flags.ctx}, ${methods.length} methods + the f32 reference\n`);
      const bar = progress('eval', total);
      const { reference, rows } = await evaluate(model.llama, tokens, methods, {
        ctx: flags.ctx,
        chunks: flags.chunks,
        bos,
        reference: flags.reference,
        saveReference: flags.saveReference,
        modelName: model.name,
        signal,
        onProgress: (c, n, label) => bar.update(c, `chunk ${c + 1}/${n}: ${label}`),
      });
      bar.update(reference.chunks, 'done');
      bar.stop();
      if (reference.chunks < total) {
        process.stderr.write(`interrupted: results cover ${reference.chunks} of ${total} chunks\n`);
        process.exitCode = 130;
      }
      const all = [reference, ...rows];
      process.stdout.write(markdownTable(all) + '\n');
      if (flags.out) {
        mkdirSync(flags.out, { recursive: true });
        const meta = { model: model.file.path, file: flags.file, ctx: flags.ctx, chunks: reference.chunks, tokens: tokens.length, seed: flags.seed, ...(flags.calibrate && { calibrate: flags.calibrate }) };
        writeFileSync(join(flags.out, 'results.json'), JSON.stringify({ ...meta, rows: all }, null, 2) + '\n');
        writeFileSync(join(flags.out, 'results.csv'), csv(all));
        const written = ['results.json', 'results.csv'];
        if (flags.plot) {
          const files = await writeTradeoffPlots(
            rows.map((r) => ({ label: r.label, bitsPerValue: r.bits, dPplPct: r.dPplPct, kld: r.kld })),
            flags.out,
            { title: `${model.name}, ${flags.file.split('/').pop()}, ctx ${flags.ctx}, ${reference.chunks} chunks` },
          );
          written.push(...files.map((f) => f.split('/').pop()!));
        }
        process.stderr.write(`wrote ${written.join(', ')} in ${flags.out}\n`);
      }
    });
  // `eval passkey` has options of the same names as `eval`: they belong to whichever comes first.
  cmd.enablePositionalOptions().addCommand(passkeyCommand());
  return cmd;
}

async function perLayer(model: Parameters<typeof perLayerProfile>[0], tokens: number[], methods: ReturnType<typeof parseMethods>, flags: EvalFlags, bos: number | undefined, total: number, signal: AbortSignal): Promise<void> {
  const bar = progress('per-layer', total);
  const rows: PerLayerRow[] = await perLayerProfile(model, tokens, methods, { ctx: flags.ctx, chunks: flags.chunks, bos, signal, onProgress: (d, n) => bar.update(d, `chunk ${d}/${n}`) });
  bar.stop();
  const lines = ['| method | layer | K rel. error | V rel. error | attention output rel. error |', '|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.label} | ${r.layer} | ${r.kRelError.toExponential(3)} | ${r.vRelError.toExponential(3)} | ${r.attnRelError.toExponential(3)} |`);
  process.stdout.write(lines.join('\n') + '\n');
  if (flags.out) {
    mkdirSync(flags.out, { recursive: true });
    writeFileSync(join(flags.out, 'per-layer.json'), JSON.stringify(rows, null, 2) + '\n');
    process.stderr.write(`wrote per-layer.json in ${flags.out}\n`);
  }
}

function passkeyCommand(): Command {
  return new Command('passkey')
    .description('hide a number in filler text at several depths and ask for it back; accuracy per method')
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .requiredOption('-c, --ctx <tokens>', 'prompt length to fill', intArg('--ctx', 32))
    .option('--methods <list>', "methods separated by spaces or ';' (SPEC, K|V, policy=FILE)", 'f32 f16 q8_0 q4_0')
    .option('--trials <n>', 'keys per depth', intArg('--trials', 1), 2)
    .option('-s, --seed <n>', 'seed for the keys', intArg('--seed', 0), 1)
    .action(async (flags: { model?: string; tokenizer?: string; ctx: number; methods: string; trials: number; seed: number }) => {
      const methods = parseMethods(flags.methods);
      const model = await openModel(flags);
      const total = methods.length * 5 * flags.trials;
      const bar = progress('passkey', total);
      const rows: PasskeyRow[] = await passkey(model, { ctx: flags.ctx, trials: flags.trials, seed: flags.seed, policies: methods, signal: interruptSignal(), onProgress: (d) => bar.update(d, '') });
      bar.stop();
      const lines = ['| method | depth | trials | correct | accuracy |', '|---|---|---|---|---|'];
      for (const r of rows) lines.push(`| ${r.label} | ${r.depth} | ${r.trials} | ${r.correct} | ${(100 * r.accuracy).toFixed(0)}% |`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}

/**
 * Special tokens the way llama.cpp's vocabulary loader treats them, shared by every tokenizer
 * type: which ids end generation, which token texts are forced to the control type, and how
 * special-token text is cut out of the input before tokenizing (`tokenizer_st_partition`).
 */
import { TokenType } from './types.js';
import type { SpecialIds } from './types.js';

/** Tokens that end generation whatever the file says (llama.cpp's `special_eog_ids` loop). */
const EOG_NAMES = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|eom_id|>', '<EOT>'];

/**
 * Names llama.cpp looks for when the file lacks the matching `*_token_id` key. Every match is
 * forced to the control type; `eog` marks the roles that end generation. (llama.cpp keeps one
 * match per role, in hash-map order; all of them are taken here.)
 */
const ROLES: { key: keyof SpecialIds; eog: boolean; names: string[] }[] = [
  { key: 'eot', eog: true, names: ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<EOT>', '<｜end▁of▁sentence｜>'] },
  { key: 'eom', eog: true, names: ['<|eom_id|>'] },
  { key: 'fimPre', eog: false, names: ['<|fim_prefix|>', '<fim-prefix>', '<｜fim▁begin｜>', '<PRE>'] },
  { key: 'fimSuf', eog: false, names: ['<|fim_suffix|>', '<fim-suffix>', '<｜fim▁hole｜>', '<SUF>'] },
  { key: 'fimMid', eog: false, names: ['<|fim_middle|>', '<fim-middle>', '<｜fim▁end｜>', '<MID>'] },
  { key: 'fimPad', eog: true, names: ['<|fim_pad|>', '<fim-pad>', '<PAD>'] },
  { key: 'fimRep', eog: true, names: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>'] },
  { key: 'fimSep', eog: true, names: ['<|file_sep|>'] },
];

export interface ResolvedSpecials {
  /** Token types after llama.cpp's control-type overrides. */
  readonly types: Int32Array;
  /** End-of-generation ids. */
  readonly eog: ReadonlySet<number>;
}

/** llama.cpp's special-token pass of `llama_vocab::impl::load`. eos may be null (WordPiece). */
export function resolveSpecials(
  tokens: readonly string[],
  types: ArrayLike<number>,
  eos: number | null,
  ids: SpecialIds,
): ResolvedSpecials {
  const resolved = Int32Array.from(types);
  const eog = new Set<number>();
  const idOf = new Map<string, number>();
  tokens.forEach((t, id) => idOf.set(t, id));
  const force = (id: number | undefined, isEog: boolean) => {
    if (id === undefined) return;
    resolved[id] = TokenType.Control;
    if (isEog) eog.add(id);
  };

  for (const role of ROLES) {
    const given = ids[role.key];
    if (given !== undefined) {
      if (role.eog) eog.add(given);
      continue;
    }
    for (const name of role.names) force(idOf.get(name), role.eog);
  }
  for (const name of EOG_NAMES) force(idOf.get(name), true);
  if (eos !== null) eog.add(eos);
  return { types: resolved, eog };
}

/** A piece of the input: raw text [start, end) when id < 0, else an already-matched special token. */
export interface Fragment {
  readonly start: number;
  readonly end: number;
  readonly id: number;
}

/** Cuts special-token text out of the input (`tokenizer_st_partition`). */
export class SpecialSplitter {
  /** Control, unknown and user-defined ids, longest text (in UTF-8 bytes) first. */
  private readonly specials: number[] = [];
  private readonly byText = new Map<string, number>();

  constructor(
    private readonly tokens: readonly string[],
    private readonly types: Int32Array,
  ) {
    for (let id = 0; id < tokens.length; id++) {
      const t = types[id];
      const special = t === TokenType.Control || t === TokenType.UserDefined || t === TokenType.Unknown;
      // An empty text would match everywhere; llama.cpp renames empty tokens so they never match.
      if (!special || tokens[id].length === 0) continue;
      this.specials.push(id);
      this.byText.set(tokens[id], id);
    }
    const byteLength = (id: number) => Buffer.byteLength(tokens[id], 'utf8');
    // Equal lengths go in id order (llama.cpp's std::sort leaves that order unspecified).
    this.specials.sort((a, b) => byteLength(b) - byteLength(a) || a - b);
  }

  /** The id of the control, unknown or user-defined token written exactly as text. */
  idOf(text: string): number | undefined {
    return this.byText.get(text);
  }

  /**
   * Each special token in turn (longest first) is cut out of every remaining raw-text fragment,
   * leftmost occurrence first. Control and unknown tokens only count with parseSpecial;
   * user-defined ones always do. Occurrences are found with one scan of the whole text per token.
   */
  split(text: string, parseSpecial: boolean): Fragment[] {
    let frags: Fragment[] = [{ start: 0, end: text.length, id: -1 }];
    for (const id of this.specials) {
      if (!parseSpecial && this.types[id] !== TokenType.UserDefined) continue;
      const tok = this.tokens[id];
      const hits: number[] = [];
      for (let at = text.indexOf(tok); at >= 0; at = text.indexOf(tok, at + 1)) hits.push(at);
      if (hits.length === 0) continue;

      const next: Fragment[] = [];
      let h = 0;
      for (const f of frags) {
        if (f.id >= 0) {
          next.push(f);
          continue;
        }
        let pos = f.start;
        while (h < hits.length && hits[h] < pos) h++;
        while (h < hits.length && hits[h] + tok.length <= f.end) {
          const at = hits[h++];
          if (at < pos) continue; // overlaps the previous match
          if (at > pos) next.push({ start: pos, end: at, id: -1 });
          next.push({ start: at, end: at + tok.length, id });
          pos = at + tok.length;
        }
        if (pos < f.end) next.push({ start: pos, end: f.end, id: -1 });
      }
      frags = next;
    }
    return frags;
  }
}

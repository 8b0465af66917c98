/**
 * Every problem found in a model, tokenizer or data file is reported as one of these, so a user
 * sees which file, which field and what is wrong instead of a crash deep in the forward pass.
 */
export class ModelFormatError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${file}: ${field}: ${problem}`);
    this.name = 'ModelFormatError';
  }
}

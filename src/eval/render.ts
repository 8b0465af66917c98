/** Renders a vega-lite spec headless to `<base>.svg` and `<base>.png` (resvg, 1200 px wide). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Width of the PNG files, in pixels. */
export const PNG_WIDTH = 1200;

export async function renderVegaLite(spec: Record<string, unknown>, base: string): Promise<[svgPath: string, pngPath: string]> {
  const [vl, vega, { Resvg }] = await Promise.all([import('vega-lite'), import('vega'), import('@resvg/resvg-js')]);
  const vgSpec = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(vgSpec as never), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, {
    fitTo: { mode: 'width', value: PNG_WIDTH },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  await mkdir(dirname(base), { recursive: true });
  await writeFile(`${base}.svg`, svg, 'utf8');
  await writeFile(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}

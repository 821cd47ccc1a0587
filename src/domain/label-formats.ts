/**
 * Label Studio rectangle results in the object-detection formats (pure).
 *
 * Label Studio stores a rectangle as percentages of the image (`value.x`, `y`, `width`, `height`,
 * 0–100, top-left corner) with `rotation` in degrees clockwise about that corner, and the image's
 * pixel size in `original_width` / `original_height` (labelstud.io, "Export formats" and the
 * RectangleLabels tag). Rotated rectangles become their axis-aligned bounding box.
 * - COCO (cocodataset.org/#format-data): `bbox` = [x, y, width, height] in pixels from the
 *   top-left, `area` = width × height, `category_id` = the label's index (0-based, the order of
 *   the `<Label>`s of the config's RectangleLabels, as Label Studio's own COCO export numbers them).
 * - YOLO (Ultralytics "detect" labels): one line per box, `class x_center y_center width height`,
 *   each normalised to 0–1, the class being the same index.
 */
import { checkLabelingConfig } from './labeling-config.ts';

/** The labels of every RectangleLabels control, in config order, without repeats: index = class id. */
export function rectangleClasses(configXml: string): string[] {
  const check = checkLabelingConfig(configXml);
  if (!check.ok) return [];
  const classes: string[] = [];
  const els = check.config.elements;
  for (let i = 0; i < els.length; i++) {
    if (els[i]!.tag.toLowerCase() !== 'rectanglelabels') continue;
    for (let j = i + 1; j < els.length && els[j]!.depth > els[i]!.depth; j++) {
      const value = els[j]!.attrs.get('value');
      if (els[j]!.tag.toLowerCase() === 'label' && value !== undefined && !classes.includes(value)) classes.push(value);
    }
  }
  return classes;
}

export interface Box {
  classId: number;
  label: string;
  /** Axis-aligned, in percent of the image (0–100), clipped to the image. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Image size in pixels, when the result says. */
  imageWidth: number | null;
  imageHeight: number | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The rectangles of a Label Studio result whose label is one of `classes`. */
export function rectangles(result: unknown, classes: readonly string[]): Box[] {
  if (!Array.isArray(result)) return [];
  const boxes: Box[] = [];
  for (const r of result as Record<string, unknown>[]) {
    if (typeof r !== 'object' || r === null || typeof r.type !== 'string' || r.type.toLowerCase() !== 'rectanglelabels') continue;
    const v = (r.value ?? {}) as Record<string, unknown>;
    const label = Array.isArray(v.rectanglelabels) ? v.rectanglelabels[0] : undefined;
    const classId = typeof label === 'string' ? classes.indexOf(label) : -1;
    const [x, y, w, h] = [num(v.x), num(v.y), num(v.width), num(v.height)];
    if (classId < 0 || x === null || y === null || w === null || h === null || w <= 0 || h <= 0) continue;
    const aabb = rotatedBounds(x, y, w, h, num(v.rotation) ?? 0, num(r.original_width), num(r.original_height));
    const left = Math.max(0, aabb.minX);
    const top = Math.max(0, aabb.minY);
    const right = Math.min(100, aabb.maxX);
    const bottom = Math.min(100, aabb.maxY);
    if (right <= left || bottom <= top) continue;
    boxes.push({
      classId,
      label: label as string,
      x: left,
      y: top,
      width: right - left,
      height: bottom - top,
      imageWidth: num(r.original_width),
      imageHeight: num(r.original_height),
    });
  }
  return boxes;
}

/**
 * The axis-aligned bounds (percent) of a rectangle rotated `deg` clockwise about its top-left
 * corner. Rotation happens in pixels (percent units differ along x and y); without the image
 * size, a square image is assumed.
 */
function rotatedBounds(x: number, y: number, w: number, h: number, deg: number, iw: number | null, ih: number | null) {
  if (deg % 360 === 0) return { minX: x, minY: y, maxX: x + w, maxY: y + h };
  const sx = iw ?? 100;
  const sy = ih ?? 100;
  const rad = (deg * Math.PI) / 180;
  const [cos, sin] = [Math.cos(rad), Math.sin(rad)];
  const pw = (w * sx) / 100;
  const ph = (h * sy) / 100;
  const corners = [
    [0, 0],
    [pw, 0],
    [pw, ph],
    [0, ph],
  ].map(([cx, cy]) => [(x * sx) / 100 + cx! * cos - cy! * sin, (y * sy) / 100 + cx! * sin + cy! * cos]);
  const xs = corners.map((c) => (c[0]! * 100) / sx);
  const ys = corners.map((c) => (c[1]! * 100) / sy);
  return { minX: Math.min(...xs), minY: Math.min(...ys), maxX: Math.max(...xs), maxY: Math.max(...ys) };
}

const round = (n: number, places: number) => Number(n.toFixed(places));

/** A COCO annotation for a box (pixel units need the image size: boxes without it are skipped by callers). */
export function cocoAnnotation(box: Box, id: number, imageId: number) {
  const w = box.imageWidth ?? 0;
  const h = box.imageHeight ?? 0;
  const bbox = [(box.x * w) / 100, (box.y * h) / 100, (box.width * w) / 100, (box.height * h) / 100].map((n) => round(n, 2));
  return { id, image_id: imageId, category_id: box.classId, bbox, area: round(bbox[2]! * bbox[3]!, 2), iscrowd: 0, segmentation: [] as number[][] };
}

/** A YOLO label line for a box: `class x_center y_center width height`, normalised, 6 decimals. */
export function yoloLine(box: Box): string {
  const f = (n: number) => (n / 100).toFixed(6);
  return `${box.classId} ${f(box.x + box.width / 2)} ${f(box.y + box.height / 2)} ${f(box.width)} ${f(box.height)}`;
}

/** The label file of an image in a YOLO dataset: `labels/<key without its extension>.txt`. */
export function yoloLabelPath(imageKey: string): string {
  const stem = imageKey.replace(/^\/+/, '').replace(/\.[^./]*$/, '');
  return `labels/${stem}.txt`;
}

/** Label Studio rectangles as COCO boxes and YOLO lines. */
import { describe, expect, it } from 'vitest';
import { cocoAnnotation, rectangleClasses, rectangles, yoloLabelPath, yoloLine } from '../../src/domain/label-formats.ts';

const CONFIG = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="cat"/></Choices>
  <RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person" background="red"/></RectangleLabels>
  <RectangleLabels name="box2" toName="image"><Label value="person"/><Label value="bike"/></RectangleLabels>
</View>`;

const rect = (value: Record<string, unknown>, size: { w?: number; h?: number } = { w: 200, h: 100 }) => ({
  from_name: 'box',
  to_name: 'image',
  type: 'rectanglelabels',
  ...(size.w ? { original_width: size.w } : {}),
  ...(size.h ? { original_height: size.h } : {}),
  value: { rotation: 0, ...value },
});

describe('label formats', () => {
  it('numbers the classes of every RectangleLabels control in config order, once each', () => {
    expect(rectangleClasses(CONFIG)).toEqual(['car', 'person', 'bike']);
    expect(rectangleClasses('<View><Image name="i" value="$image"/><Choices name="c" toName="i"><Choice value="a"/></Choices></View>')).toEqual([]);
  });

  it('turns percent rectangles into COCO pixel boxes and YOLO centre lines', () => {
    const classes = rectangleClasses(CONFIG);
    const boxes = rectangles(
      [
        rect({ x: 10, y: 20, width: 50, height: 40, rectanglelabels: ['person'] }),
        rect({ x: 0, y: 0, width: 100, height: 100, rectanglelabels: ['bike'] }),
        { from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } },
        rect({ x: 1, y: 1, width: 5, height: 5, rectanglelabels: ['unknown'] }),
        rect({ x: 1, y: 1, width: 0, height: 5, rectanglelabels: ['car'] }),
        // Not made by Label Studio's forms, but an annotator may post it through its API.
        { ...rect({ x: 1, y: 1, width: 5, height: 5, rectanglelabels: ['car'] }), type: { toString: 0 } },
        { ...rect({ x: 1, y: 1, width: 5, height: 5, rectanglelabels: ['car'] }), type: ['rectanglelabels'] },
      ],
      classes,
    );
    expect(boxes.map((b) => [b.classId, b.label])).toEqual([
      [1, 'person'],
      [2, 'bike'],
    ]);
    expect(cocoAnnotation(boxes[0]!, 7, 42)).toEqual({ id: 7, image_id: 42, category_id: 1, bbox: [20, 20, 100, 40], area: 4000, iscrowd: 0, segmentation: [] });
    expect(yoloLine(boxes[0]!)).toBe('1 0.350000 0.400000 0.500000 0.400000');
    expect(yoloLine(boxes[1]!)).toBe('2 0.500000 0.500000 1.000000 1.000000');
  });

  it('uses the axis-aligned bounds of a rotated rectangle, clipped to the image', () => {
    // 90° clockwise about the top-left corner (40 %, 10 %) of a 200×100 image: a 20×10 px box
    // (10 % × 10 %) turns into a 10×20 px box to the left of the corner.
    const [b] = rectangles([rect({ x: 40, y: 10, width: 10, height: 10, rotation: 90, rectanglelabels: ['car'] })], ['car']);
    expect(cocoAnnotation(b!, 1, 1).bbox).toEqual([70, 10, 10, 20]);
    const [clipped] = rectangles([rect({ x: 95, y: 90, width: 10, height: 20, rectanglelabels: ['car'] })], ['car']);
    expect([clipped!.x, clipped!.y, clipped!.width, clipped!.height]).toEqual([95, 90, 5, 10]);
  });

  it('keeps boxes without the image size (YOLO needs none) and says so', () => {
    const [b] = rectangles([rect({ x: 10, y: 10, width: 10, height: 10, rectanglelabels: ['car'] }, {})], ['car']);
    expect(b!.imageWidth).toBeNull();
    expect(yoloLine(b!)).toBe('0 0.150000 0.150000 0.100000 0.100000');
  });

  it('names label files after the image key', () => {
    expect(yoloLabelPath('images/cars/0001.jpg')).toBe('labels/images/cars/0001.txt');
    expect(yoloLabelPath('/a.b/c')).toBe('labels/a.b/c.txt');
    expect(yoloLabelPath('x.tar.gz')).toBe('labels/x.tar.txt');
  });
});

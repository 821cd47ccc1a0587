import { describe, expect, it } from 'vitest';
import { configNames, isoMicros, predictionFor, projectKey, taskDataKey, withoutReviewControls } from '../../src/domain/task-data.ts';

const XML = `<View><Image name="img" value="$photo"/><RectangleLabels name="box" toName="img"><Label value="car"/></RectangleLabels>
<Choices name="review_decision" toName="img"><Choice value="accept"/><Choice value="reject"/></Choices></View>`;

describe('task data from the labeling config', () => {
  it('finds the data key and the names', () => {
    expect(taskDataKey(XML)).toBe('photo');
    expect(taskDataKey('<View><Header value="x"/></View>')).toBe('image');
    expect(configNames(XML)).toEqual(new Set(['img', 'box', 'review_decision']));
  });
  it('keeps only prediction entries the config can show', () => {
    const result = [
      { from_name: 'box', to_name: 'img', type: 'rectanglelabels', value: {} },
      { from_name: 'label', to_name: 'img', type: 'choices', value: {} },
      { from_name: 'box', to_name: 'other', type: 'rectanglelabels', value: {} },
    ];
    expect(predictionFor(result, configNames(XML))).toEqual([result[0]]);
    expect(predictionFor(null, configNames(XML))).toEqual([]);
    expect(withoutReviewControls([{ from_name: 'review_decision' }, { from_name: 'box' }])).toEqual([{ from_name: 'box' }]);
  });
  it('keys projects so they can be found again', () => {
    expect(projectKey(12)).toBe('[labelfleet:assignment=12]');
  });
  it('keeps microseconds of Label Studio timestamps', () => {
    expect(isoMicros('2026-11-23T06:32:22.315194Z')).toBe(Date.parse('2026-11-23T06:32:22Z') * 1000 + 315194);
    expect(isoMicros('2026-11-23T06:32:22Z')).toBe(Date.parse('2026-11-23T06:32:22Z') * 1000);
    expect(isoMicros('2026-11-23T07:32:22.5+01:00')).toBe(Date.parse('2026-11-23T06:32:22Z') * 1000 + 500000);
  });
});

/**
 * Settings: every known run-time setting with its type, default, meaning and current value,
 * checked (src/domain/setting-specs.ts) before PUT /api/settings/:key; other stored keys below.
 */
import { listStoredSettings } from '../../db/catalog.ts';
import { isSecretSettingKey, MASK } from '../../api/settings.ts';
import { KNOWN_SETTING_KEYS, rangeText, SETTING_SPECS } from '../../domain/setting-specs.ts';
import { SETTING_DEFAULTS } from '../../settings.ts';
import { Empty, TableWrap, Time } from '../components.tsx';
import type { PageContext } from '../index.tsx';

const shown = (key: string, valueText: string) => (isSecretSettingKey(key) && valueText !== 'null' ? JSON.stringify(MASK) : valueText);

export async function settingsPage(p: PageContext) {
  const { rows: stored } = await listStoredSettings(p.ctx.database.db);
  const byKey = new Map(stored.map((s) => [s.key, s]));
  const others = stored.filter((s) => !(KNOWN_SETTING_KEYS as string[]).includes(s.key));
  return p.render({
    title: 'Settings',
    nav: 'settings',
    topics: ['settings'],
    body: (
      <>
        <p class="help">
          Changes apply at the next reconciler pass (seconds). A stored value of the wrong type falls back to the default; this page checks
          values before saving.
        </p>
        <div id="settings" data-live-region>
          <TableWrap label="Settings">
            <table class="settings">
              <thead>
                <tr>
                  <th scope="col">Setting</th>
                  <th scope="col">Type</th>
                  <th scope="col">Default</th>
                  <th scope="col">Value</th>
                </tr>
              </thead>
              <tbody>
                {KNOWN_SETTING_KEYS.map((key) => {
                  const spec = SETTING_SPECS[key];
                  const row = byKey.get(key);
                  const range = spec.min !== undefined ? ` ${rangeText(spec)}` : '';
                  const id = `setting-${key}`;
                  return (
                    <tr id={id}>
                      <td>
                        <code>{key}</code>
                        <p class="help">{spec.description}</p>
                      </td>
                      <td>
                        {spec.type}
                        {range}
                        {spec.nullable ? ', or empty' : ''}
                      </td>
                      <td>
                        <code>{JSON.stringify(SETTING_DEFAULTS[key])}</code>
                      </td>
                      <td>
                        <form class="setting-form" data-setting-form data-key={key} data-type={spec.type} aria-label={`Set ${key}`} novalidate>
                          {spec.type === 'boolean' ? (
                            <select id={`${id}-value`} name="value" aria-describedby={`${id}-error`} aria-label={`${key} value`}>
                              <option value="" selected={!row}>
                                default
                              </option>
                              <option value="true" selected={row?.valueText === 'true'}>
                                true
                              </option>
                              <option value="false" selected={row?.valueText === 'false'}>
                                false
                              </option>
                            </select>
                          ) : (
                            <input
                              id={`${id}-value`}
                              name="value"
                              type="text"
                              inputmode={spec.type === 'number' || spec.type === 'integer' ? 'decimal' : undefined}
                              value={row ? settingText(spec.type, row.valueText) : ''}
                              placeholder={`default ${JSON.stringify(SETTING_DEFAULTS[key])}`}
                              aria-describedby={`${id}-error`}
                              aria-label={`${key} value`}
                            />
                          )}
                          <button type="submit" class="button small">
                            Save
                          </button>
                          <p class="field-error" id={`${id}-error`} data-error-for="value" hidden></p>
                          {row ? (
                            <p class="help">
                              set <Time at={row.updatedAt} relative />
                            </p>
                          ) : null}
                        </form>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
          <h2>Other stored keys</h2>
          {others.length ? (
            <TableWrap label="Other settings">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Key</th>
                    <th scope="col">Value</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {others.map((s) => (
                    <tr>
                      <td>
                        <code>{s.key}</code>
                        {s.description ? <p class="help">{s.description}</p> : null}
                      </td>
                      <td class="wrap">
                        <code>{shown(s.key, s.valueText)}</code>
                      </td>
                      <td>
                        <Time at={s.updatedAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : (
            <Empty>None.</Empty>
          )}
        </div>
      </>
    ),
  });
}

/** A stored value (JSON text) as the form shows it: numbers as written, lists comma-separated, null empty. */
function settingText(type: string, valueText: string): string {
  if (valueText === 'null') return '';
  if (type === 'number' || type === 'integer') return valueText;
  const value: unknown = JSON.parse(valueText);
  return Array.isArray(value) ? value.join(', ') : String(value);
}

import { createContext, Fragment, type ComponentChildren } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/**
 * The console's building blocks. Every form and every action shows the API's message next to the
 * field it is about (or above the form), shows that it is working, and cannot be sent twice.
 */

function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, { error: e instanceof Error ? e.message : String(e), code: 'internal_error', request_id: '' });
}

interface FormState {
  errors: Record<string, string>;
  busy: boolean;
  /** What the ids of the form's fields start with: `<prefix>-<name>`. */
  prefix: string;
}
const FormContext = createContext<FormState>({ errors: {}, busy: false, prefix: 'field' });

export interface FormProps {
  /** Does the work; may return a message to show once it is done. Throw an ApiError to refuse. */
  onSubmit: () => Promise<string | void>;
  /** The submit button's label, and its label while the work runs. */
  submit: string;
  busy?: string;
  /** Error codes that belong to a field: `{ weak_password: 'password' }`. */
  fieldFor?: Record<string, string>;
  /** A clearer message for some refusals than the API's (`401` at sign-in); else the API's. */
  explain?: (error: ApiError) => string | undefined;
  /** Say the done-message next to the button (default) or leave it to the caller. */
  quiet?: boolean;
  class?: string;
  /** Other buttons, after the submit button. */
  actions?: ComponentChildren;
  children?: ComponentChildren;
  /** An accessible name for the form, when the page has more than one. */
  label?: string;
  /**
   * What its fields' ids start with (`<id>-<name>`, `<id>-<name>-hint`, `<id>-<name>-error`), so
   * that two forms of one page with a field of one name keep their ids apart; `field` by default.
   */
  id?: string;
}

export function Form({ onSubmit, submit, busy, fieldFor = {}, explain, quiet, class: className, actions, children, label, id: prefix = 'field' }: FormProps) {
  const [status, setState] = useState<Omit<FormState, 'prefix'>>({ errors: {}, busy: false });
  const state: FormState = { ...status, prefix };
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const inFlight = useRef(false);
  const form = useRef<HTMLFormElement>(null);

  async function submitted(event: Event) {
    event.preventDefault();
    if (inFlight.current) return;
    inFlight.current = true;
    setState({ errors: {}, busy: true });
    setMessage(null);
    try {
      const done = await onSubmit();
      if (!form.current) return; // the page moved on
      setState({ errors: {}, busy: false });
      if (done && !quiet) setMessage({ text: done, error: false });
    } catch (e) {
      const err = asApiError(e);
      const text = explain?.(err) ?? err.message;
      const errors = err.fieldMessages();
      const field = fieldFor[err.code];
      if (field) errors[field] = text;
      const shown = Object.keys(errors).some((name) => form.current?.querySelector(`[name="${CSS.escape(name)}"]`));
      setState({ errors, busy: false });
      setMessage(shown ? null : { text, error: true });
      // The first field with a message gets the focus, so a keyboard user lands on it.
      requestAnimationFrame(() => form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
    } finally {
      inFlight.current = false;
    }
  }

  return (
    <FormContext.Provider value={state}>
      <form ref={form} class={className} onSubmit={submitted} aria-busy={state.busy} aria-label={label} noValidate>
        {children}
        <div class="form-actions">
          <button type="submit" class="primary" disabled={state.busy}>
            {state.busy ? <Spinner label={busy ?? `${submit}…`} /> : submit}
          </button>
          {actions}
          <span class="form-message" role={message?.error ? 'alert' : 'status'}>
            {message && <span class={message.error ? 'error' : 'ok'}>{message.text}</span>}
          </span>
        </div>
      </form>
    </FormContext.Provider>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <span class="busy">
      <span class="spinner" aria-hidden="true" />
      {label}
    </span>
  );
}

interface InputProps {
  type?: 'text' | 'email' | 'password' | 'search' | 'datetime-local' | 'date' | 'number';
  autoComplete?: string;
  required?: boolean;
  placeholder?: string;
  maxLength?: number;
  readOnly?: boolean;
  min?: string;
  max?: string;
  spellcheck?: boolean;
  /** The keyboard a phone shows (`numeric` for a code of digits). */
  inputMode?: 'numeric' | 'text';
  autoCapitalize?: 'off' | 'none';
}

export interface FieldProps extends InputProps {
  name: string;
  label: string;
  value: string;
  onValue: (value: string) => void;
  hint?: ComponentChildren;
}

/** What a control of the enclosing Form needs: its id, its message after a refusal, whether the form is busy, and what describes it. */
function useControl(name: string, hint: unknown) {
  const { errors, busy, prefix } = useContext(FormContext);
  const id = `${prefix}-${name}`;
  const error = errors[name];
  return { id, error, busy, invalid: error ? ('true' as const) : undefined, described: describedBy(id, hint, error) };
}

/** A labelled control, its hint and its message: the body every field of a form shares. */
function Labelled({ id, label, hint, error, children }: { id: string; label: string; hint?: ComponentChildren; error?: string; children: ComponentChildren }) {
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      <HintAndError id={id} hint={hint} error={error} />
    </div>
  );
}

/** A labelled input with its hint and, after a refusal, the API's message about it. */
export function Field({ name, label, value, onValue, hint, type = 'text', ...rest }: FieldProps) {
  const { id, error, busy, invalid, described } = useControl(name, hint);
  return (
    <Labelled id={id} label={label} hint={hint} error={error}>
      <input
        {...rest}
        id={id}
        name={name}
        type={type as 'text'}
        value={value}
        readOnly={busy || rest.readOnly}
        aria-invalid={invalid}
        aria-describedby={described}
        onInput={(e) => onValue((e.target as HTMLInputElement).value)}
      />
    </Labelled>
  );
}

/** The caller's current password, asked where a change must prove who makes it (password, address). */
export function CurrentPassword({ value, onValue, hint }: { value: string; onValue: (v: string) => void; hint?: string }) {
  return <Field name="current_password" label="Current password" type="password" autoComplete="current-password" required value={value} onValue={onValue} hint={hint} />;
}

export interface TextAreaProps {
  name: string;
  label: string;
  value: string;
  onValue: (value: string) => void;
  hint?: ComponentChildren;
  rows?: number;
}

export function TextArea({ name, label, value, onValue, hint, rows = 8 }: TextAreaProps) {
  const { id, error, busy, invalid, described } = useControl(name, hint);
  return (
    <Labelled id={id} label={label} hint={hint} error={error}>
      <textarea
        id={id}
        name={name}
        rows={rows}
        value={value}
        spellcheck={false}
        readOnly={busy}
        aria-invalid={invalid}
        aria-describedby={described}
        onInput={(e) => onValue((e.target as HTMLTextAreaElement).value)}
      />
    </Labelled>
  );
}

export function Checkbox({ name, label, checked, onChecked, hint }: { name: string; label: string; checked: boolean; onChecked: (v: boolean) => void; hint?: string }) {
  const { id, error, busy, invalid, described } = useControl(name, hint);
  return (
    <div class={`field checkbox${error ? ' invalid' : ''}`}>
      <input
        id={id}
        name={name}
        type="checkbox"
        checked={checked}
        disabled={busy}
        aria-invalid={invalid}
        aria-describedby={described}
        onChange={(e) => onChecked((e.target as HTMLInputElement).checked)}
      />
      <label for={id}>{label}</label>
      <HintAndError id={id} hint={hint} error={error} />
    </div>
  );
}

export function Select({ name, label, value, onValue, options, hint }: { name: string; label: string; value: string; onValue: (v: string) => void; options: Array<[string, string]>; hint?: string }) {
  const { id, error, busy, invalid, described } = useControl(name, hint);
  return (
    <Labelled id={id} label={label} hint={hint} error={error}>
      <select id={id} name={name} value={value} disabled={busy} aria-invalid={invalid} aria-describedby={described} onChange={(e) => onValue((e.target as HTMLSelectElement).value)}>
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </Labelled>
  );
}

/** The message a refusal left for field `name` of the enclosing Form (for fields drawn by a page itself). */
export function useFieldError(name: string): string | undefined {
  return useContext(FormContext).errors[name];
}

function describedBy(id: string, hint: unknown, error: string | undefined): string | undefined {
  return [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
}

/** A field's hint and its error message, with the ids `aria-describedby` names. */
export function HintAndError({ id, hint, error }: { id: string; hint?: ComponentChildren; error?: string }) {
  return (
    <>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </>
  );
}

/**
 * A button that runs an action: asks first when `confirm` is given (a modal dialog, keyboard
 * friendly), shows progress, cannot run twice at once, and shows the API's message if refused.
 */
export function ActionButton({
  onClick,
  children,
  confirm,
  confirmLabel,
  danger,
  busy,
  label,
}: {
  onClick: () => Promise<unknown>;
  children: ComponentChildren;
  confirm?: string;
  confirmLabel?: string;
  danger?: boolean;
  busy?: string;
  /** An accessible name when the visible text is not enough ("Delete" in a table row). */
  label?: string;
}) {
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inFlight = useRef(false);
  const dialog = useRef<HTMLDialogElement>(null);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );

  async function run() {
    if (inFlight.current) return;
    inFlight.current = true;
    setRunning(true);
    setError(null);
    try {
      await onClick();
    } catch (e) {
      if (alive.current) setError(asApiError(e).message);
    } finally {
      inFlight.current = false;
      if (alive.current) setRunning(false);
    }
  }

  return (
    <span class="action">
      <button type="button" class={danger ? 'danger' : undefined} disabled={running} aria-label={label} onClick={() => (confirm ? dialog.current?.showModal() : run())}>
        {running ? <Spinner label={busy ?? 'Working…'} /> : children}
      </button>
      {confirm && (
        <dialog ref={dialog} class="confirm" aria-label={label ?? (typeof children === 'string' ? children : 'Confirm')}>
          <form method="dialog">
            <p>{confirm}</p>
            <div class="form-actions">
              <button type="submit" value="cancel" autofocus>
                Cancel
              </button>
              <button
                type="button"
                class={danger ? 'danger' : 'primary'}
                onClick={() => {
                  dialog.current?.close();
                  void run();
                }}
              >
                {confirmLabel ?? children}
              </button>
            </div>
          </form>
        </dialog>
      )}
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

/** Load something for a page: `{data, error, reload}`; `data` stays while it reloads, so nothing jumps. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): { data?: T; error?: ApiError; loading: boolean; reload: () => Promise<void> } {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: true });
  const generation = useRef(0);
  async function reload() {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, loading: false });
    } catch (e) {
      if (mine === generation.current) setState((s) => ({ data: s.data, error: asApiError(e), loading: false }));
    }
  }
  useEffect(() => {
    void reload();
    return () => {
      generation.current += 1;
    };
  }, deps);
  return { ...state, reload };
}

/**
 * A table's scrolling region: a narrow window scrolls the table sideways rather than break its
 * words, and the region is named and reachable by keyboard, so it can be scrolled without a mouse.
 */
export function TableRegion({ label, labelledBy, busy, class: className, children }: { label?: string; labelledBy?: string; busy?: boolean; class?: string; children: ComponentChildren }) {
  return (
    <div class={`table-wrap${className ? ` ${className}` : ''}`} role="region" aria-label={label} aria-labelledby={labelledBy} tabIndex={0} aria-busy={busy}>
      {children}
    </div>
  );
}

/** A table's column headings; `actions`: a last column of buttons, its heading read out but not shown. */
export function TableHead({ columns, actions }: { columns: string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
        {actions && (
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}

/** One fact on a page: its label, its value, and the value's class (`mono` for an id). */
export type Fact = [label: string, value: ComponentChildren, className?: string];

/** Facts as label and value, one a row; a row that is `false` is left out, so a row can stand on a condition. */
export function Facts({ rows }: { rows: Array<Fact | false> }) {
  return (
    <dl class="facts">
      {rows
        .filter((row): row is Fact => row !== false)
        .map(([label, value, className]) => (
          <Fragment key={label}>
            <dt>{label}</dt>
            <dd class={className}>{value}</dd>
          </Fragment>
        ))}
    </dl>
  );
}

/** Placeholder rows of the size of what is coming, so the page does not move when it arrives. */
export function Placeholder({ rows = 3 }: { rows?: number }) {
  return (
    <div class="placeholder" aria-hidden="true">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} class="placeholder-row" />
      ))}
    </div>
  );
}

export function ErrorNote({ error }: { error?: ApiError }) {
  if (!error) return null;
  return (
    <p class="error banner" role="alert">
      {error.message}
    </p>
  );
}

/** A page's title (also the document's) and its heading, which gets the focus when the page opens. */
export function Page({ title, children, wide }: { title: string; children: ComponentChildren; wide?: boolean }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Accounts`;
    heading.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <section class={`page${wide ? ' wide' : ''}`}>
      <h1 ref={heading} tabIndex={-1}>
        {title}
      </h1>
      {children}
    </section>
  );
}

export function Time({ value, empty = 'never', seconds }: { value?: string | null; empty?: string; seconds?: boolean }) {
  if (!value) return <span class="muted">{empty}</span>;
  const d = new Date(value);
  return (
    <time dateTime={value} title={d.toISOString()}>
      {d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: seconds ? 'medium' : 'short' })}
    </time>
  );
}

/**
 * A region that has just appeared (a secret, a next step) takes the focus and scrolls into view,
 * so a keyboard or screen reader user lands on it: whenever `key` changes. Give it to the region's ref.
 */
export function useRevealed<T extends HTMLElement>(key: unknown) {
  const box = useRef<T>(null);
  useEffect(() => {
    box.current?.focus({ preventScroll: true });
    box.current?.scrollIntoView({ block: 'nearest' });
  }, [key]);
  return box;
}

/**
 * Something shown this once (a new API token, recovery codes, a webhook's signing secret): a region
 * that takes the focus when it appears (and again when `value` changes), its heading, what the
 * caller says, and its buttons (a copy button, "I have copied it").
 */
export function ShownOnce({
  value,
  headingId,
  heading,
  class: className,
  children,
  actions,
}: {
  value: unknown;
  headingId: string;
  heading: ComponentChildren;
  class?: string;
  children: ComponentChildren;
  actions: ComponentChildren;
}) {
  const box = useRevealed<HTMLDivElement>(value);
  return (
    <div class={`secret${className ? ` ${className}` : ''}`} ref={box} tabIndex={-1} role="region" aria-labelledby={headingId}>
      <h2 id={headingId}>{heading}</h2>
      {children}
      <div class="form-actions">{actions}</div>
    </div>
  );
}

/**
 * Checkboxes in titled groups (`[title, values]`), one `<fieldset>` each, a value shown as code:
 * the audit log's action filter and a webhook's events. `name` is every checkbox's name.
 */
export function ChoiceGroups<T extends string>({
  name,
  groups,
  chosen,
  onChange,
  disabled,
}: {
  name: string;
  groups: Array<[string, readonly T[]]>;
  chosen: ReadonlySet<T>;
  onChange: (next: Set<T>) => void;
  disabled?: boolean;
}) {
  function toggle(value: T, on: boolean) {
    const next = new Set(chosen);
    if (on) next.add(value);
    else next.delete(value);
    onChange(next);
  }
  return (
    <div class="action-groups">
      {groups.map(([title, list]) => (
        <fieldset key={title}>
          <legend>{title}</legend>
          {list.map((v) => (
            <label key={v}>
              <input type="checkbox" name={name} value={v} checked={chosen.has(v)} disabled={disabled} onChange={(e) => toggle(v, (e.target as HTMLInputElement).checked)} />
              <code>{v}</code>
            </label>
          ))}
        </fieldset>
      ))}
    </div>
  );
}

/** Copies `text` to the clipboard and says so. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  return (
    <span class="action">
      <button
        type="button"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(text);
            setCopied('yes');
          } catch {
            setCopied('failed');
          }
        }}
      >
        {label}
      </button>
      <span role="status" class="muted">
        {copied === 'yes' ? 'Copied.' : copied === 'failed' ? 'Could not copy: select the text and copy it.' : ''}
      </span>
    </span>
  );
}

/**
 * Keyset paging: "Previous" goes back through the cursors seen, "Next" follows the Link header's.
 * When `deps` (the filters) change, paging starts again at the first page in that same render, so
 * a cursor of the old filters is never sent with the new ones.
 */
export function usePager(deps: unknown[]) {
  const key = JSON.stringify(deps);
  const [state, setState] = useState<{ key: string; cursors: Array<string | undefined> }>({ key, cursors: [undefined] });
  const cursors = state.key === key ? state.cursors : [undefined];
  const go = (next: Array<string | undefined>) => setState({ key, cursors: next });
  return {
    cursor: cursors[cursors.length - 1],
    pageNumber: cursors.length,
    controls: (next: string | undefined, loading: boolean) => (
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length === 1 || loading} onClick={() => go(cursors.slice(0, -1))}>
          Previous
        </button>
        <span class="muted">Page {cursors.length}</span>
        <button type="button" disabled={!next || loading} onClick={() => go([...cursors, next])}>
          Next
        </button>
      </nav>
    ),
  };
}

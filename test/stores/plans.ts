import type { Knex } from 'knex';

/** One node of EXPLAIN (FORMAT JSON)'s plan tree: only the members these tests read. */
export interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/**
 * Each statement `work` sends through `knex`, run again under EXPLAIN (ANALYZE, FORMAT JSON): the
 * plans the store's own queries get, with what each node really read.
 */
export async function explainEach(knex: Knex, work: () => Promise<unknown>): Promise<PlanNode[]> {
  const sent: { sql: string; bindings: readonly unknown[] }[] = [];
  const listener = (q: { sql: string; bindings?: readonly unknown[] }) => {
    sent.push({ sql: q.sql, bindings: q.bindings ?? [] });
  };
  knex.on('query', listener);
  try {
    await work();
  } finally {
    knex.removeListener('query', listener);
  }
  if (sent.length === 0) throw new Error('no statement was sent');
  const plans: PlanNode[] = [];
  for (const statement of sent) {
    // The pg client numbers its parameters ($1, $2, ...) in the order of the bindings.
    const sql = statement.sql.replace(/\$\d+/g, '?');
    const { rows } = await knex.raw(`explain (analyze, format json) ${sql}`, statement.bindings as Knex.RawBinding[]);
    const json = rows[0]['QUERY PLAN'];
    plans.push((typeof json === 'string' ? JSON.parse(json) : json)[0].Plan as PlanNode);
  }
  return plans;
}

/** The plan of the last statement `work` sends through `knex` (see explainEach). */
export async function explainLast(knex: Knex, work: () => Promise<unknown>): Promise<PlanNode> {
  const plans = await explainEach(knex, work);
  return plans[plans.length - 1];
}

export function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/** The indexes a plan reads. */
export function indexesUsed(plan: PlanNode): string[] {
  return [...new Set(nodes(plan).flatMap((n) => (n['Index Name'] ? [n['Index Name']] : [])))].sort();
}

/**
 * The most rows any one node of the plan produced or threw away, over all its loops: what a page
 * costs, in rows, whatever the plan's shape. A walk of the whole table shows up here.
 */
export function mostRowsRead(plan: PlanNode): number {
  return Math.max(
    ...nodes(plan).map(
      (n) => ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * (n['Actual Loops'] ?? 1),
    ),
  );
}

/** Byte order of UTF-8 (collate "C"), then id: the order of every list. */
export function byNameC(a: { name: string; id: string }, b: { name: string; id: string }): number {
  return Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8')) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether (name, id) comes after the cursor in list order. */
export function isAfter(row: { name: string; id: string }, after: { name: string; id: string } | undefined): boolean {
  return after === undefined || byNameC(row, after) > 0;
}

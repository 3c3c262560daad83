import unhomoglyph from 'unhomoglyph';

const DEFAULT_IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/**
 * The library whose table maps each character to its prototype: Unicode's confusables.txt
 * (UTS #39), data 13.0.0, as published by nodeca. Skeletons are stored (users.name_skeleton,
 * user_groups.name_skeleton), so a release that maps differently needs a migration that
 * recomputes them: package.json pins this version and test/domain/name-skeleton.test.ts fails
 * when another one is installed.
 */
export const SKELETON_TABLE = 'unhomoglyph@1.0.6';

/**
 * UTS #39's skeleton (section 4) of a name's NFKC form, the form names are stored in (so
 * fullwidth `ａｄｍｉｎ` is `admin` here too, also for names stored before the rule): NFD (of the
 * NFKC form: NFKD), default-ignorable code points removed, each character replaced by its
 * prototype, NFD again. Two names are confusable when their skeletons are equal: `аdmin`
 * (Cyrillic а), `admin\u200b` and `adrnin` all have the skeleton of `admin`. Case is not folded
 * (the standard's skeleton does not, and names are case-sensitive): `Admin` and `admin` differ,
 * but `I` and `l` share a prototype. A skeleton is for comparing only, never shown.
 */
export function nameSkeleton(name: string): string {
  return unhomoglyph(name.normalize('NFKD').replace(DEFAULT_IGNORABLE, '')).normalize('NFD');
}
